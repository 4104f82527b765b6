"""Scoring each saved version on the held-back reviewed patches, in the background.

Every third patch the user marks reviewed is held back from training (see the
Annotation queue); each fine-tuning round's model and the one before it are
scored on those patches so that a round that made things worse can be flagged.
The scores are measured one version at a time, and only once the round that made
the version has segmented again: the labels the user is waiting for come first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from napari.utils.notifications import show_error

from napari_resunet.core.versions import iter_held_back_scores
from napari_resunet.ui._workers import JobSlot, start_job

# (version number, a model before the round was given, scores of each model)
OnScored = Callable[[int, bool, list], None]


class HeldBackScorer:
    """The versions still to be scored, oldest first, and the job scoring one."""

    def __init__(self, store: Any, on_scored: OnScored) -> None:
        self._store = store
        self._on_scored = on_scored
        self._pending: list[tuple[int, Any, Any, list]] = []
        self._job = JobSlot(on_idle=self.next)
        store.settled.connect(self.next)

    def add(
        self,
        number: int,
        before: Any,
        after: Any,
        image: np.ndarray,
        labels: np.ndarray,
        patches: Sequence[tuple[slice, ...]],
    ) -> None:
        """Queue version ``number`` (``after``; ``before`` may be None) for scoring
        on ``patches`` of ``image`` / ``labels``, copied now: the user may paint on
        while they are scored. :meth:`next` starts the work."""
        crops = [
            (np.array(image[sl]), np.array(labels[sl]))
            for sl in patches
            if len(sl) == labels.ndim
        ]
        if crops:
            self._pending.append((number, before, after, crops))

    def next(self) -> None:
        """Start scoring the oldest pending version, unless a job runs or a round
        is still segmenting."""
        if self._store.settling or self._job.busy or not self._pending:
            return
        number, before, after, crops = self._pending.pop(0)
        models = [m for m in (before, after) if m is not None]
        self._job.start(
            lambda finished: start_job(
                iter_held_back_scores,
                models,
                crops,
                desc=f"Scoring v{number}",
                on_returned=lambda scores: self._on_scored(
                    number, before is not None, scores
                ),
                on_errored=lambda err: show_error(f"Scoring v{number} failed: {err}"),
                on_finished=finished,
            )
        )
