"""Per-viewer state: the session's current model, its undo stack, and label edits.

Keyed weakly by viewer (no module-level model), so two viewers never share a
model and a closed viewer's state is freed with it.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal

from napari_resunet.core.config import InferenceConfig
from napari_resunet.core.edits import corrections_mask, update_edited

if TYPE_CHECKING:
    import napari

    from napari_resunet.core.models.resunet import ResUNet


@dataclass
class LabelsTrack:
    """What was last predicted into a Labels layer, and what the user changed since."""

    last_prediction: np.ndarray | None = None
    edited: np.ndarray | None = None
    # predictions written so far: a merge computed off the viewer's thread is
    # applied only if no other prediction was written in the meantime
    writes: int = 0

    def refresh(self, current: np.ndarray) -> np.ndarray:
        """Fold changes since the last prediction into ``edited`` and return it."""
        self.edited = update_edited(current, self.last_prediction, self.edited)
        return self.edited


@dataclass(frozen=True)
class FirstPass:
    """A segmentation's probabilities, kept for the queue's uncertainty (which
    would otherwise predict the same unmirrored image again).

    Attributes:
        model: a weak reference to the model that made them.
        image: the image snapshot they were predicted from.
        channel_axis, cfg, voxel_size: the prediction's settings.
        probabilities: ``(C, *spatial)``, as ``iter_predict`` returned them.
    """

    model: Any
    image: np.ndarray
    channel_axis: int | None
    cfg: Any
    voxel_size: tuple[float, ...] | None
    probabilities: np.ndarray

    def matches(
        self, model: Any, channel_axis: int | None, cfg: Any, voxel_size: Any
    ) -> bool:
        """Made by ``model`` with these settings (the image is compared by whoever
        takes it, off the main thread)."""
        return (
            self.model() is model
            and self.channel_axis == channel_axis
            and self.cfg == cfg
            and self.voxel_size == voxel_size
        )


@dataclass
class ModelStore:
    """The model a viewer's widgets share.

    Attributes:
        model: the current network (``None`` until one is chosen).
        source: a short description ("new 2D network", a checkpoint path, ...).
        rounds: fine-tuning rounds applied to the current model.
        pretrained: the current model descends from finished training (a starter
            model, a checkpoint, a saved version) rather than a new network; it is
            then fine-tuned at a lower rate (see ``finetune_config``).
        reviewed: patches the user marked "correct as shown" (queue).
        settling: the widget that changed the model is still segmenting with it
            (a fine-tuning round's re-segmentation). Work that can wait, such as
            the queue's uncertainty, waits for ``settled`` instead of competing
            for the same cores and delaying the labels the user is waiting for.
    """

    model: ResUNet | None = None
    source: str = ""
    rounds: int = 0
    pretrained: bool = False
    reviewed: list[tuple[slice, ...]] = field(default_factory=list)
    # reviewed patches kept out of training, to score each round on unseen truth
    held_back: list[tuple[slice, ...]] = field(default_factory=list)
    # facts about the round that produced the current model (corrections, steps)
    last_round: dict[str, Any] = field(default_factory=dict)
    # the Fine-tune widget's "run a round" (weakly held), for the queue's button
    finetune_hook: Any = None
    settling: bool = False
    _settler: Any = None  # the widget whose work holds ``settling``
    # the cell settings (watershed) the Segment widget last segmented with: the
    # re-segmentation after a round or a restored version uses them too
    instance_cfg: Any = None
    # and the prediction settings it used (tiles, test-time flips); None: defaults
    inference_cfg: Any = None
    # the last segmentation's probabilities, kept only once a queue wants them
    # (they are as large as the image times its classes)
    keep_first_pass: bool = False
    first_pass: FirstPass | None = None
    _undo: list[tuple[Any, str, int, bool]] = field(default_factory=list)
    _tracks: weakref.WeakKeyDictionary = field(
        default_factory=weakref.WeakKeyDictionary
    )

    changed = Signal()
    settled = Signal()

    @property
    def trained(self) -> bool:
        """The current model has learnt something: it descends from finished
        training or has been fine-tuned at least once. A new network's outputs say
        nothing of the image yet (its class mix, what it calls background)."""
        return self.pretrained or self.rounds > 0

    def set_model(
        self,
        model: ResUNet,
        source: str,
        undoable: bool = False,
        pretrained: bool | None = None,
    ) -> None:
        """Make ``model`` current; ``undoable`` keeps the previous one for undo.

        ``pretrained`` defaults to the current value for undoable changes (a
        fine-tuning round keeps its lineage) and otherwise to True: a model from
        anywhere but a freshly built network is taken to be trained.
        """
        if pretrained is None:
            pretrained = (
                self.pretrained if undoable and self.model is not None else True
            )
        if undoable and self.model is not None:
            self._undo.append((self.model, self.source, self.rounds, self.pretrained))
            del self._undo[:-5]  # keep the last five versions
        else:
            self._undo.clear()
        self.model, self.source, self.pretrained = model, source, pretrained
        self.rounds = self.rounds + 1 if undoable else 0
        self.first_pass = None  # another model's
        if not undoable:  # another lineage: its own tuned cell settings apply
            self.instance_cfg = None
        self.changed.emit()

    def resegment_config(self) -> InferenceConfig:
        """Prediction settings for the segmentations that follow a model change (a
        round, a restored version, a comparison): the Segment widget's last ones,
        so the labels keep being made the same way."""
        return self.inference_cfg or InferenceConfig(use_compile="never")

    def remember_first_pass(
        self,
        model: Any,
        image: np.ndarray,
        channel_axis: int | None,
        cfg: Any,
        voxel_size: tuple[float, ...] | None,
        probabilities: np.ndarray,
    ) -> None:
        """Keep a segmentation's probabilities for the queue, if one wants them."""
        if self.keep_first_pass and model is self.model:
            self.first_pass = FirstPass(
                weakref.ref(model), image, channel_axis, cfg, voxel_size, probabilities
            )

    def take_first_pass(
        self,
        model: Any,
        channel_axis: int | None,
        cfg: Any,
        voxel_size: tuple[float, ...] | None,
    ) -> FirstPass | None:
        """The kept probabilities if ``model`` made them with these settings; they
        are let go either way (one use: the next round makes new ones)."""
        kept, self.first_pass = self.first_pass, None
        if kept is not None and kept.matches(model, channel_axis, cfg, voxel_size):
            return kept
        return None

    def begin_settling(self, owner: Any) -> None:
        """``owner`` segments with the model it just changed: work that can wait
        (the queue's uncertainty, held-back scores) waits for ``settled``."""
        self.settling, self._settler = True, owner

    def end_settling(self, owner: Any) -> None:
        """``owner``'s follow-up work is over: tell whoever waited. Only the
        widget that began settling ends it; another widget's job finishing
        meanwhile (a comparison, a cancelled round) released the queue early."""
        if self.settling and owner is self._settler:
            self.settling, self._settler = False, None
            self.settled.emit()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def undo(self) -> bool:
        """Restore the model before the last undoable change; False if none."""
        if not self._undo:
            return False
        self.model, self.source, self.rounds, self.pretrained = self._undo.pop()
        self.first_pass = None
        self.changed.emit()
        return True

    def track(self, layer: Any) -> LabelsTrack:
        """Edit tracking for a Labels layer (created on first use)."""
        layer = unwrap(layer)
        tr = self._tracks.get(layer)
        if tr is None:
            tr = LabelsTrack()
            self._tracks[layer] = tr
        return tr

    def mark_reviewed(self, patch: tuple[slice, ...], layer: Any = None) -> bool:
        """Record ``patch`` as reviewed ("correct as shown"); every third reviewed
        patch is held back from training, so the Versions widget can score each
        round on truth no round learnt from and flag one that got worse.

        Every voxel of the patch then counts as the user's in ``layer`` (a Labels
        layer of the image's shape, or None), so segmenting again keeps it. A
        held-back patch too: it is the truth the rounds are scored on (fine-tuning
        leaves it out, ``learning_mask``); were it overwritten by the next round's
        segmentation, later rounds would be scored against an earlier model's
        output.

        Returns:
            Whether the patch is held back.
        """
        self.reviewed.append(patch)
        held_back = len(self.reviewed) % 3 == 0
        if held_back:
            self.held_back.append(patch)
        if layer is not None:
            edited = self.track(layer).refresh(np.asarray(layer.data))
            edited[patch] = True
        return held_back

    def reviewed_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """The voxels of the reviewed patches of an image of ``shape`` (patches of
        other dimensionality are left out)."""
        mask = np.zeros(shape, bool)
        for sl in self.reviewed:
            if len(sl) == len(shape):
                mask[sl] = True
        return mask

    def learning_mask(
        self, layer: Any, labels: np.ndarray, scope: str, spatial_dims: int
    ) -> np.ndarray | None:
        """The voxels of ``labels`` (``layer``'s data as it is now) that a
        fine-tuning round learns from: the user's corrections in ``scope``
        (``corrections_mask``; ``"all"``: every voxel, ``None`` when nothing is
        held back), never the held-back reviewed patches. The Fine-tune widget
        trains on them and the queue's forest learns from them."""
        edited = self.track(layer).refresh(labels)
        mask = (
            None
            if scope == "all"
            else corrections_mask(edited, scope, spatial_dims=spatial_dims)
        )
        held_back = [sl for sl in self.held_back if len(sl) == labels.ndim]
        if held_back:  # held-back truth is never trained on, whatever the scope
            if mask is None:
                mask = np.ones(labels.shape, bool)
            for sl in held_back:
                mask[sl] = False
        return mask


_STORES: weakref.WeakKeyDictionary[Any, ModelStore] = weakref.WeakKeyDictionary()


def unwrap(obj: Any) -> Any:
    """The real object behind napari's ``PublicOnlyProxy``.

    napari hands plugins proxies of the viewer and of every layer reached through
    it, a new proxy on each access. Weak keys must be the real objects, or the
    entry disappears with the first short-lived proxy.
    """
    while hasattr(obj, "__wrapped__"):
        obj = obj.__wrapped__
    return obj


def _warm_up() -> None:
    """Import what the plugin's first jobs need ahead of time.

    napari imports pandas when the first Labels layer is created (its feature
    table), on the main thread when the first segmentation is written: 0.16 s
    here, more while other threads run. Building the first AdamW imports
    ``torch._dynamo`` (about 1 s of import work). The Annotation queue's
    forest (:mod:`napari_resunet.core.committee`) imports scikit-learn's
    ensembles when it first ranks after a round (0.9-1.0 s here). Doing these
    in the background when the first widget opens, pandas first, keeps them out
    of the first segmentation, the first fine-tuning round and the queue's
    first second opinion, when the user is watching.
    """
    import contextlib

    import torch

    finish_pandas_import()

    # only saves time: if it fails (the interpreter exiting under this daemon
    # thread, as at the end of a short script), the first round imports the same
    with contextlib.suppress(Exception):
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    with contextlib.suppress(Exception):
        import sklearn.ensemble  # noqa: F401


def finish_pandas_import() -> None:
    """Import pandas, or wait until its import in another thread has finished.

    :func:`_warm_up` imports it with this. A magicgui ``Table`` looks pandas up
    in ``sys.modules`` without importing it. While :func:`_warm_up` imports
    pandas in its thread, that lookup finds a half-made module, and building
    the table raises ``AttributeError``: a dock with a table opened within a
    second of the first widget failed to open. An import here blocks on the
    import in progress (Python's per-module import lock) and returns the
    finished module.
    """
    import contextlib
    import importlib

    with contextlib.suppress(ImportError):  # napari's dependency, not ours
        importlib.import_module("pandas")


_WARMED = threading.Event()  # set once the warm-up has been started
WARM_UP_THREAD = "resunet-warm-up"  # its thread's name (benchmarks wait for it)


def get_store(viewer: napari.viewer.Viewer) -> ModelStore:
    """The :class:`ModelStore` of ``viewer`` (created on first use, which also
    starts the once-per-process warm-up of the imports the first jobs need)."""
    viewer = unwrap(viewer)
    store = _STORES.get(viewer)
    if store is None:
        store = ModelStore()
        _STORES[viewer] = store
        if not _WARMED.is_set():
            _WARMED.set()
            threading.Thread(target=_warm_up, name=WARM_UP_THREAD, daemon=True).start()
    return store
