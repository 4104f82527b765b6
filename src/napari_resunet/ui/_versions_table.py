"""The Model versions widget's table: one row per saved version."""

from __future__ import annotations

from collections.abc import Sequence

from magicgui.widgets import Table
from qtpy.QtWidgets import QStyledItemDelegate

from napari_resunet.core.session import ModelVersion
from napari_resunet.ui._model_store import finish_pandas_import


def fmt_score(x: float | None) -> str:
    """A held-back score as the table, status line and warnings write it."""
    return "" if x is None else f"{x:.3f}"


class VersionsTable(Table):
    """Time, corrected voxels, steps, held-back Dice before and after, and a note
    for each version, the version's name heading its row."""

    # short headers: the dock is narrow; "Dice before/after" is on the held-back
    # reviewed patches (the status line and the tooltip say so)
    COLUMNS = ("time", "voxels", "steps", "Dice before", "after", "note")

    def __init__(self) -> None:
        finish_pandas_import()  # the table looks pandas up; not while half made
        super().__init__(value=[], columns=list(self.COLUMNS))
        self.min_height = 160
        # cells show their text as written: magicgui's delegate re-formats any
        # number-like text to 4 decimals ("0.991" as "0.9910"), out of step with
        # the status line and warnings, which give scores to 3
        self.native.setItemDelegate(QStyledItemDelegate(self.native))

    def show_versions(self, versions: Sequence[ModelVersion]) -> None:
        """One row per version."""
        rows = [
            [
                v.created[11:16],
                # text: a number cell shows 103600 as "1.036e+05"
                f"{v.n_corrections:,}",
                str(v.steps),
                fmt_score(v.score_before),
                fmt_score(v.score_after),
                "worse on held-back patches" if v.is_worse else v.note,
            ]
            for v in versions
        ]
        self.value = {
            "data": rows,
            # the version names the row: one column less in a narrow dock
            "index": [f"v{v.number}" for v in versions],
            "columns": list(self.COLUMNS),
        }
        self.native.resizeColumnsToContents()
