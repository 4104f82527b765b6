"""Annotation sessions: immutable model versions, corrections and reviewed patches.

A session is a folder::

    session.json        what the session is about, its versions and reviewed patches
    models/v001.pt      one checkpoint per fine-tuning round, never overwritten
    corrections.npz     the corrected labels and the mask of voxels the user edited

Everything is written atomically, so a session interrupted at any moment reopens
in its last saved state. The default location is the platform's user data folder
(``default_session_root``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_resunet.core.io import atomic_output
from napari_resunet.core.models.checkpoint import load_checkpoint, save_checkpoint
from napari_resunet.core.models.resunet import ResUNet

FORMAT_NAME = "napari-resunet-session"
FORMAT_VERSION = 1


class SessionError(ValueError):
    """A session folder is missing, foreign or inconsistent."""


def default_session_root() -> Path:
    """Where new sessions go by default: ``<user data dir>/napari-resunet/sessions``."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-resunet", appauthor=False)) / "sessions"


#: A round is flagged as worse when the held-back Dice drops by more than this.
#: Scores are shown to 3 decimals; without a margin a drop in the fourth decimal
#: (0.9874 -> 0.9871, shown "0.987 -> 0.987") raised a warning the user could not
#: read anything from.
WORSE_TOLERANCE = 0.002


@dataclass(frozen=True)
class ModelVersion:
    """One saved fine-tuning round.

    Attributes:
        number: 1, 2, ... in order of creation.
        file: checkpoint path relative to the session folder.
        created: local time of creation, ISO 8601.
        n_corrections: annotated voxels the round learned from.
        steps: optimiser steps of the round.
        score_before / score_after: score on held-back reviewed patches before and
            after the round (``None`` when there were none to score).
        note: free text (e.g. "rolled back to v2").
    """

    number: int
    file: str
    created: str
    n_corrections: int = 0
    steps: int = 0
    score_before: float | None = None
    score_after: float | None = None
    note: str = ""

    @property
    def is_worse(self) -> bool:
        """True when the round lowered the held-back score by more than
        :data:`WORSE_TOLERANCE`: worth a warning."""
        return (
            self.score_before is not None
            and self.score_after is not None
            and self.score_after < self.score_before - WORSE_TOLERANCE
        )


Slices = tuple[slice, ...]


def _slices_to_list(sl: Slices) -> list[list[int]]:
    return [[int(s.start), int(s.stop)] for s in sl]


def _slices_from_list(data: Sequence[Sequence[int]]) -> Slices:
    return tuple(slice(int(a), int(b)) for a, b in data)


class AnnotationSession:
    """Model versions, corrections and reviewed patches of one annotation effort.

    Example:
        >>> s = AnnotationSession.create(folder, image="embryo.tif")  # doctest: +SKIP
        >>> v = s.add_version(model, n_corrections=1200, steps=40)  # doctest: +SKIP
        >>> model = s.load_version(v.number)  # doctest: +SKIP
    """

    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.folder = folder
        self._data = data

    # ---- creation and opening -------------------------------------------------
    @classmethod
    def create(
        cls, folder: str | os.PathLike | None = None, image: str = ""
    ) -> AnnotationSession:
        """Start a new session in ``folder`` (default: a new timestamped folder
        under :func:`default_session_root`). An existing session is never reused."""
        if folder is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            folder = default_session_root() / stamp
            n = 1
            while folder.exists():
                n += 1
                folder = default_session_root() / f"{stamp}-{n}"
        folder = Path(folder)
        if (folder / "session.json").exists():
            raise SessionError(
                f"{folder} already holds a session; open it instead of creating one."
            )
        (folder / "models").mkdir(parents=True, exist_ok=True)
        session = cls(
            folder,
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "image": str(image),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "versions": [],
                "reviewed": [],
                "held_back": [],
            },
        )
        session._write()
        return session

    @classmethod
    def open(cls, folder: str | os.PathLike) -> AnnotationSession:
        """Reopen a saved session.

        Raises:
            SessionError: no session there, a foreign file, or a missing checkpoint.
        """
        folder = Path(folder)
        path = folder / "session.json"
        if not path.is_file():
            raise SessionError(f"No annotation session in {folder} (no session.json).")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise SessionError(f"{path} is not readable: {err}") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise SessionError(f"{path} is not a napari-resunet session file.")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise SessionError(f"{path} was written by a newer napari-resunet.")
        session = cls(folder, data)
        missing = [v.file for v in session.versions if not (folder / v.file).is_file()]
        if missing:
            raise SessionError(f"The session lacks model files: {', '.join(missing)}.")
        return session

    def _write(self) -> None:
        with atomic_output(self.folder / "session.json") as tmp:
            tmp.write_text(json.dumps(self._data, indent=1), encoding="utf-8")

    # ---- versions ---------------------------------------------------------------
    @property
    def image(self) -> str:
        return str(self._data.get("image", ""))

    @property
    def versions(self) -> list[ModelVersion]:
        return [ModelVersion(**v) for v in self._data["versions"]]

    def add_version(
        self,
        model: ResUNet,
        n_corrections: int = 0,
        steps: int = 0,
        score_before: float | None = None,
        score_after: float | None = None,
        note: str = "",
        training: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Save ``model`` as the next immutable version and record it."""
        number = len(self._data["versions"]) + 1
        rel = f"models/v{number:03d}.pt"
        if (self.folder / rel).exists():
            raise SessionError(f"{rel} exists already; versions are never overwritten.")
        save_checkpoint(self.folder / rel, model, training)
        version = ModelVersion(
            number=number,
            file=rel,
            created=time.strftime("%Y-%m-%dT%H:%M:%S"),
            n_corrections=int(n_corrections),
            steps=int(steps),
            score_before=None if score_before is None else float(score_before),
            score_after=None if score_after is None else float(score_after),
            note=note,
        )
        self._data["versions"].append(asdict(version))
        self._write()
        return version

    def set_scores(
        self, number: int, score_before: float | None, score_after: float | None
    ) -> ModelVersion:
        """Record held-back scores measured after version ``number`` was saved.

        The checkpoint stays as it was; only its entry in ``session.json`` changes.
        """
        for entry in self._data["versions"]:
            if entry["number"] == number:
                entry["score_before"] = (
                    None if score_before is None else float(score_before)
                )
                entry["score_after"] = (
                    None if score_after is None else float(score_after)
                )
                self._write()
                return ModelVersion(**entry)
        raise SessionError(f"There is no version v{number}.")

    def load_version(self, number: int, device: str = "cpu") -> ResUNet:
        """The model of version ``number`` (1-based)."""
        versions = self.versions
        if not 1 <= number <= len(versions):
            raise SessionError(
                f"There is no version {number}; the session has {len(versions)}."
            )
        model, _ = load_checkpoint(self.folder / versions[number - 1].file, device)
        return model

    # ---- reviewed patches and corrections ---------------------------------------
    @property
    def reviewed(self) -> list[Slices]:
        return [_slices_from_list(r) for r in self._data["reviewed"]]

    @property
    def held_back(self) -> list[Slices]:
        """Reviewed patches kept out of training, used to score each round."""
        return [_slices_from_list(r) for r in self._data.get("held_back", [])]

    def mark_reviewed(self, patch: Slices, held_back: bool = False) -> None:
        """Record ``patch`` as reviewed ("correct as shown"); ``held_back`` keeps it
        out of training, for scoring."""
        entry = _slices_to_list(patch)
        key = "held_back" if held_back else "reviewed"
        self._data.setdefault(key, [])
        if entry not in self._data[key]:
            self._data[key].append(entry)
            self._write()

    def reviewed_mask(self, shape: Sequence[int]) -> NDArray[np.bool_]:
        """Boolean mask of all reviewed patches for an image of ``shape``."""
        mask = np.zeros(tuple(shape), bool)
        for sl in self.reviewed:
            mask[sl] = True
        return mask

    def save_corrections(self, labels: NDArray, edited: NDArray) -> None:
        """Store the corrected labels and the edited-voxel mask (compressed)."""
        labels, edited = np.asarray(labels), np.asarray(edited, bool)
        if labels.shape != edited.shape:
            raise ValueError("labels and edited mask differ in shape.")
        with (
            atomic_output(self.folder / "corrections.npz") as tmp,
            open(tmp, "wb") as fh,
        ):
            np.savez_compressed(fh, labels=labels, edited=edited)

    def load_corrections(self) -> tuple[NDArray, NDArray[np.bool_]] | None:
        """``(labels, edited)`` as last saved, or ``None`` if never saved."""
        path = self.folder / "corrections.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return data["labels"], data["edited"].astype(bool)
