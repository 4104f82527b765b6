"""The progress record that long-running generators yield."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    """One progress report from ``iter_predict`` or ``iter_train``.

    Attributes:
        step: work units done so far (1-based after the first unit).
        total: work units planned for the job.
        message: short human-readable status.
        phase: ``"predict"``, ``"train"`` or ``"validate"``.
        metrics: numbers that go with this step (``loss``, ``lr``, ``val_dice`` ...).
    """

    step: int
    total: int
    message: str = ""
    phase: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Fraction of the job done, in [0, 1]."""
        return min(1.0, self.step / self.total) if self.total else 1.0


def relay(
    gen: Generator[Progress, None, Any],
    offset: int,
    total: int,
    prefix: str,
    phase: str,
) -> Generator[Progress, None, Any]:
    """Pass on a sub-job's progress as part of a bigger job; return its result.

    Each record becomes ``Progress(offset + step, total, prefix + message, phase)``,
    so ``result = yield from relay(...)`` runs one stage of a multi-stage job.
    """
    while True:
        try:
            rec = next(gen)
        except StopIteration as stop:
            return stop.value
        yield Progress(offset + rec.step, total, f"{prefix}{rec.message}", phase)


def run_generator(
    gen: Generator[Progress, None, Any], show_progress: bool, desc: str
) -> Any:
    """Drive a progress generator to completion and return its return value."""
    bar = None
    try:
        while True:
            try:
                rec = next(gen)
            except StopIteration as stop:
                return stop.value
            if show_progress:
                if bar is None:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=rec.total, desc=desc, unit="step")
                bar.total = rec.total
                bar.n = rec.step
                if rec.metrics:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in rec.metrics.items()})
                bar.refresh()
    finally:
        gen.close()
        if bar is not None:
            bar.close()
