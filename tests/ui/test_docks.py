"""The docks as a user opens them: all at once, each control with its help."""

import subprocess
import sys
import textwrap

from magicgui.widgets import Container, Label
from tests.ui.conftest import dock

DOCKS = ["Segment", "Fine-tune", "Annotation queue", "Model versions", "Evaluate"]


def _controls(container):
    for w in container:
        if isinstance(w, Container):
            yield from _controls(w)
        elif not isinstance(w, Label):  # status lines are read, not used
            yield w


def test_every_control_of_every_dock_has_help(make_napari_viewer):
    viewer = make_napari_viewer()
    missing = []
    for name in DOCKS:
        widget = dock(viewer, name)
        missing += [
            f"{name}: {w.label or getattr(w, 'text', '') or type(w).__name__}"
            for w in _controls(widget)
            if not (w.tooltip or "").strip()
        ]
    assert not missing, "\n".join(missing)


def _fresh_interpreter(code: str) -> list[str]:
    """Run ``code`` in a new Python process (nothing imported yet); its printed
    words."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_a_table_waits_for_pandas_half_imported_by_the_warm_up():
    """The plugin's warm-up imports pandas in a thread; a magicgui Table built
    meanwhile found a half-made module and the dock failed to open. Run in a
    fresh interpreter, where pandas is not imported yet."""
    words = _fresh_interpreter(
        """
        import sys, threading, time
        from napari_resunet.ui._model_store import finish_pandas_import
        assert "pandas" not in sys.modules
        threading.Thread(target=__import__, args=("pandas",), daemon=True).start()
        while "pandas" not in sys.modules:  # the import has begun, not ended
            time.sleep(0.0005)
        half_made = not hasattr(sys.modules["pandas"], "DataFrame")
        finish_pandas_import()
        print(half_made, hasattr(sys.modules["pandas"], "DataFrame"))
        """
    )
    # caught half made (so the test could fail), and whole once it returns
    assert words == ["True", "True"]


def test_the_warm_up_imports_what_the_first_rounds_need():
    """In a fresh interpreter: after the warm-up, the first fine-tuning round's
    optimiser and the queue's forest import nothing more of note."""
    words = _fresh_interpreter(
        """
        import sys
        from napari_resunet.ui._model_store import _warm_up
        before = "sklearn.ensemble" in sys.modules
        _warm_up()
        print(before, *(m in sys.modules for m in
              ("pandas", "torch._dynamo", "sklearn.ensemble")))
        """
    )
    assert words == ["False", "True", "True", "True"]
