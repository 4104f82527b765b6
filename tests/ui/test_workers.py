"""Jobs and napari's activity indicator, in a real viewer."""

from __future__ import annotations

from qtpy.QtGui import QMovie

from napari_resunet.core.progress import Progress
from napari_resunet.ui._workers import start_job


def _indicator_movie(viewer) -> QMovie:
    dialog = viewer.window._qt_window._activity_dialog
    return dialog._toggleButton._inProgressIndicator.movie()


def test_jobs_keep_the_activity_indicator_still(make_napari_viewer, qtbot):
    """napari animates its "in progress" GIF for every progress bar; each frame
    repaints the window, which under software OpenGL took half the CPU from
    fine-tuning. Our jobs keep their progress bar and pause the GIF."""
    from napari.utils import progress

    viewer = make_napari_viewer()
    movie = _indicator_movie(viewer)

    def job():
        for i in range(3):
            yield Progress(i + 1, 3, f"step {i + 1}")
        return "done"

    seen: list = []
    worker = start_job(
        job,
        total=3,
        desc="ours",
        on_yielded=lambda rec: seen.append((movie.state(), worker.pbar.n)),
    )
    qtbot.waitUntil(lambda: len(seen) == 3 and not worker.is_running, timeout=10_000)
    assert [n for _, n in seen] == [1, 2, 3]  # the progress bar still moves
    assert all(state == QMovie.MovieState.Paused for state, _ in seen), seen
    # anyone else's progress bar: napari animates the indicator as it always does
    other = progress(total=2, desc="someone else's job")
    assert movie.state() == QMovie.MovieState.Running
    other.close()
