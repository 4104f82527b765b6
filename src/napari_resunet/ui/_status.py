"""The status line at the bottom of every dock widget."""

from __future__ import annotations

from magicgui.widgets import Label


def status_label(text: str = "") -> Label:
    """A Label that wraps long messages instead of widening its dock.

    An unwrapped QLabel asks for the width of its longest message, and a dock
    area takes the widest of its widgets: one long status ("Session model: 2D,
    fine-tuned, …") squeezed the canvas to a third of the window.
    """
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value=text)
    label.native.setWordWrap(True)
    # take the dock's whole width, so messages wrap at its edge, not at a few words
    label.native.setSizePolicy(
        QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred
    )
    return label
