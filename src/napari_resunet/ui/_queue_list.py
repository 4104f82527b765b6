"""The Annotation queue's list: its patches in queue order, with their scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from magicgui.widgets import Select
from qtpy.QtWidgets import QAbstractItemView

from napari_resunet.core.patches import RankedPatch


class QueueList(Select):
    """The queue's entries, one selectable at a time.

    A visible list rather than a combo box, so the scores of the next entries
    are in view. Selecting an entry here (a click, the arrow keys) emits
    ``changed`` with ``[index]``; :meth:`pick` selects one without it.
    """

    def __init__(self) -> None:
        self.entries: list[RankedPatch] = []
        self.score_name = "uncertainty"  # what the listed scores are
        super().__init__(label="queue", choices=self._choices)
        # one entry at a time: magicgui's Select allows several by default
        self.native.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.native.setMinimumHeight(120)

    def describe(self, index: int) -> str:
        """Entry ``index`` as the list and the status line write it."""
        entry = self.entries[index]
        where = ", ".join(
            f"{a} {s.start}" for a, s in zip("zyx"[-len(entry.slices) :], entry.slices)
        )
        # what the score is: uncertainty, or with a forest's second opinion the
        # share of the patch covered by cells the two learners dispute, times
        # the patch's typicality
        return f"{index + 1}. {self.score_name} {entry.score:.3f} at {where}"

    def show_entries(self, entries: Sequence[RankedPatch], score_name: str) -> None:
        """List ``entries`` in their order, none selected.

        magicgui keeps the items whose text is unchanged where they were and
        appends the others, which scrambled the order after a re-ranking: the
        list is emptied first.
        """
        self.entries, self.score_name = list(entries), score_name
        self._refill()

    def pop(self, index: int) -> RankedPatch:
        """Take entry ``index`` off the list (none selected afterwards)."""
        entry = self.entries.pop(index)
        self._refill()
        return entry

    def selected(self) -> int | None:
        """The selected entry's index, or None."""
        return int(self.value[0]) if self.value else None

    def pick(self, index: int) -> None:
        """Select entry ``index`` and scroll to it, without emitting ``changed``."""
        with self.changed.blocked():
            self.value = [index]
        self.native.scrollToItem(self.native.item(index))

    def _choices(self, *_: Any) -> list[tuple[str, int]]:
        return [(self.describe(i), i) for i in range(len(self.entries))]

    def _refill(self) -> None:
        with self.changed.blocked():
            self.native.clear()
            self.reset_choices()
