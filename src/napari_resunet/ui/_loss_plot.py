"""A small live loss curve (a QWidget: custom drawing, no plotting dependency)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget


class LossPlot(QWidget):
    """Plots training loss against step; call :meth:`add` as steps arrive."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.total = 0

    def reset(self, total: int) -> None:
        self.steps, self.losses, self.total = [], [], total
        self.update()

    def add(self, step: int, loss: float) -> None:
        if math.isfinite(loss):
            self.steps.append(step)
            self.losses.append(loss)
            self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        left, right, top, bottom = 40, 8, 8, 18
        p.fillRect(0, 0, w, h, QColor(38, 41, 48))
        p.setPen(QPen(QColor(150, 150, 150), 1))
        p.drawRect(left, top, w - left - right, h - top - bottom)
        if not self.losses:
            p.drawText(left + 6, top + 16, "loss appears here while fine-tuning")
            p.end()
            return
        lo, hi = min(self.losses), max(self.losses)
        if hi - lo < 1e-9:
            hi = lo + 1e-9
        n = max(self.total, self.steps[-1], 2)
        pw, ph = w - left - right, h - top - bottom
        poly = QPolygonF(
            [
                QPointF(
                    left + pw * (s - 1) / (n - 1), top + ph * (1 - (v - lo) / (hi - lo))
                )
                for s, v in zip(self.steps, self.losses)
            ]
        )
        p.drawText(2, top + 10, f"{hi:.2f}")
        p.drawText(2, top + ph, f"{lo:.2f}")
        p.drawText(
            left, h - 4, f"step {self.steps[-1]}/{n}   loss {self.losses[-1]:.3f}"
        )
        p.setPen(QPen(QColor(255, 170, 60), 2, Qt.PenStyle.SolidLine))
        p.drawPolyline(poly)
        p.end()
