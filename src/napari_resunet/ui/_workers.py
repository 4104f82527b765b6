"""Running core generators off the UI thread, with progress and cancel.

:func:`start_job` wraps napari's ``create_worker``: the generator runs in a thread,
each yielded :class:`~napari_resunet.core.progress.Progress` moves a napari
progress bar and reaches the widget's handler on the main thread, ``quit()``
cancels between yields. With ``NAPARI_RESUNET_NO_THREADS=1`` the same generator
runs inline with the same signals, for debugging, deterministic tests and timing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Generator
from typing import Any

from psygnal import Signal

from napari_resunet.core.device import trim_host_memory

logger = logging.getLogger(__name__)

Handler = Callable[..., Any] | None


def threads_disabled() -> bool:
    """True when ``NAPARI_RESUNET_NO_THREADS`` asks for inline jobs."""
    return os.environ.get("NAPARI_RESUNET_NO_THREADS", "") not in ("", "0")


class SyncJob:
    """Runs a generator inline with the signals of napari's ``GeneratorWorker``."""

    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    aborted = Signal()
    finished = Signal()

    def __init__(self, gen: Generator) -> None:
        self._gen = gen
        self._abort = False
        self._running = False

    @property
    def is_running(self) -> bool:
        return self._running

    def quit(self) -> None:
        """Stop at the next yield."""
        self._abort = True

    def start(self) -> None:
        self._running = True
        self.started.emit()
        try:
            while True:
                if self._abort:
                    self._gen.close()
                    self.aborted.emit()
                    break
                try:
                    record = next(self._gen)
                except StopIteration as stop:
                    self.returned.emit(stop.value)
                    break
                self.yielded.emit(record)
        except Exception as err:  # noqa: BLE001 - forwarded like a thread worker's
            self.errored.emit(err)
        finally:
            self._running = False
            self.finished.emit()


def pause_activity_animation() -> bool:
    """Keep napari's "in progress" indicator still while a job of ours runs.

    When a progress bar opens, napari starts an animated GIF in its status bar.
    Every frame repaints the window, and Qt composes a window that holds an
    OpenGL canvas again as a whole: under software OpenGL (Mesa's llvmpipe: Xvfb,
    remote desktops, virtual machines) that took more than half of a 2-core CPU
    away from fine-tuning (``benchmarks/bench_finetune.py``: 2D rounds 11-13 s
    instead of 5-6 s, 3D 48 s instead of 19.5 s). The indicator stays, on its
    current frame, and the progress bar beside it still moves with every step.
    napari starts the animation again for the next progress bar, so this runs
    after each of ours. The indicator is private to napari: if it cannot be
    found, nothing changes.

    Returns:
        Whether an indicator was found and paused.
    """
    try:
        from napari._qt.qt_main_window import _QtMainWindow

        paused = False
        for window in list(_QtMainWindow._instances):
            toggle = window._activity_dialog._toggleButton
            movie = toggle._inProgressIndicator.movie()
            if movie is not None:
                movie.setPaused(True)
                paused = True
        return paused
    except Exception:  # noqa: BLE001 - napari internals moved: leave them be
        logger.debug("napari's activity indicator not found", exc_info=True)
        return False


def start_job(
    gen_func: Callable[..., Generator],
    *args: Any,
    total: int | None = None,
    desc: str = "",
    on_yielded: Handler = None,
    on_returned: Handler = None,
    on_errored: Handler = None,
    on_aborted: Handler = None,
    on_finished: Handler = None,
    **kwargs: Any,
) -> Any:
    """Start ``gen_func(*args, **kwargs)`` as a cancellable job with a progress bar.

    Args:
        total: number of steps, when known (``Progress.total`` otherwise).
        desc: progress bar label.
        on_*: handlers for the worker's signals; they run on the main thread.
            ``on_errored`` gets the exception; without it errors are shown as a
            napari notification.

    Returns:
        The worker (napari ``GeneratorWorker`` or :class:`SyncJob`); call
        ``quit()`` on it to cancel.
    """
    from napari.utils import progress

    pbar = progress(total=total or 0, desc=desc)
    pause_activity_animation()  # napari has just started it for this bar

    def _advance(record: Any) -> None:
        step, rec_total = getattr(record, "step", None), getattr(record, "total", None)
        if rec_total and pbar.total != rec_total:
            pbar.total = rec_total
        if step is not None and step > pbar.n:
            pbar.update(step - pbar.n)
        message = getattr(record, "message", "")
        if message:
            pbar.set_description(f"{desc}: {message}" if desc else message)

    def _error(err: BaseException) -> None:
        if on_errored is not None:
            on_errored(err)
            return
        from napari.utils.notifications import notification_manager

        notification_manager.receive_error(type(err), err, err.__traceback__)

    def _close(*_: Any) -> None:
        pbar.close()

    if threads_disabled():
        worker: Any = SyncJob(gen_func(*args, **kwargs))
    else:
        from napari.qt.threading import create_worker

        worker = create_worker(gen_func, *args, _ignore_errors=True, **kwargs)
    connected = [
        (worker.yielded, _advance),
        (worker.finished, _close),
        (worker.errored, _error),
    ]
    connected += [
        (signal, handler)
        for signal, handler in (
            (worker.yielded, on_yielded),
            (worker.returned, on_returned),
            (worker.aborted, on_aborted),
            (worker.finished, on_finished),
        )
        if handler is not None
    ]

    def _release(*_: Any) -> None:
        # napari's finished workers (and their Qt signal objects) outlive the job,
        # and every connected handler with them: the closures hold the job's model,
        # image snapshot and results, which leaked one fine-tuned network per
        # round. Disconnecting lets all of that go.
        for signal, handler in connected:
            with contextlib.suppress(TypeError, RuntimeError, ValueError):
                signal.disconnect(handler)
        connected.clear()
        # now that nothing holds the job's tensors, give their pages back
        # (core.device.release_memory explains the per-thread arenas)
        trim_host_memory()

    for signal, handler in connected:
        signal.connect(handler)
    worker.finished.connect(_release)  # last: runs after every finished handler
    worker.pbar = pbar
    logger.debug("starting %s", getattr(gen_func, "__name__", gen_func))
    worker.start()
    return worker


class JobSlot:
    """The one job a widget runs at a time.

    ``start(factory)`` calls ``factory(on_finished)`` (which must start a job and
    return its worker) and holds the worker until *that* job's ``finished`` fires;
    a job started from another job's handlers (fine-tune, then segment again)
    simply takes over the slot. ``on_idle`` runs when the slot empties.
    """

    def __init__(self, on_idle: Callable[[], None]) -> None:
        self.worker: Any = None
        self._on_idle = on_idle
        self._current = 0

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(self, factory: Callable[[Callable[[], None]], Any]) -> None:
        self._current += 1
        job = self._current
        done = False

        def finished() -> None:
            nonlocal done
            done = True
            if job == self._current:
                self.worker = None
                self._on_idle()

        worker = factory(finished)
        if not done and job == self._current:
            self.worker = worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
