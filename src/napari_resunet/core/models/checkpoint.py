"""Model factory and the checkpoint file format.

A checkpoint is a plain dict of tensors and primitive values, so it loads with
``torch.load(..., weights_only=True)``: a file that tries to run code on load (a
malicious pickle) is refused instead of executed. Keys:

``format`` / ``format_version``
    identify the file as ours.
``package_version``
    the napari-resunet version that wrote it.
``model_config`` / ``normalization``
    :class:`ModelConfig` and :class:`NormalizationConfig` as dicts.
``state_dict`` and ``state_sha256``
    the weights and a SHA-256 over their bytes, checked on load so that a
    corrupted or tampered file is reported rather than silently mispredicting.
``training``
    optional metadata (train config, loss history, data description).
``instance_config``
    optional cell post-processing settings tuned for the network.

Files are written atomically (temporary file + rename), so an interrupted save
never destroys an earlier checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from napari_resunet.core.config import InstanceConfig, ModelConfig, NormalizationConfig
from napari_resunet.core.io import atomic_output
from napari_resunet.core.models.resunet import ResUNet

logger = logging.getLogger(__name__)

FORMAT_NAME = "napari-resunet-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, foreign, corrupt or tampered with."""


def build_model(
    cfg: ModelConfig,
    normalization: NormalizationConfig | None = None,
    seed: int | None = 0,
    instance_config: InstanceConfig | None = None,
) -> ResUNet:
    """Build a freshly initialised :class:`ResUNet` from ``cfg``.

    Args:
        cfg: the architecture.
        normalization: the intensity scheme the network will expect.
        seed: seeds the weight initialisation (same seed -> same weights) without
            touching torch's global random state; ``None`` uses that global state.
    """
    if seed is None:
        return _construct(cfg, normalization, instance_config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _construct(cfg, normalization, instance_config)


def _construct(
    cfg: ModelConfig,
    normalization: NormalizationConfig | None,
    instance_config: InstanceConfig | None,
) -> ResUNet:
    return ResUNet(
        spatial_dims=cfg.spatial_dims,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        features=cfg.features,
        norm=cfg.norm,
        dropout=cfg.dropout,
        normalization=normalization,
        task=cfg.task,
        instance_config=instance_config,
    )


def _state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _to_plain(value: Any) -> Any:
    """Convert tuples (and nested containers) to lists so weights_only can load them."""
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    raise TypeError(f"Cannot store {type(value).__name__} in checkpoint metadata.")


def save_checkpoint(
    path: str | os.PathLike,
    model: ResUNet,
    training: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model`` (weights, config, normalisation) and ``training`` to ``path``.

    The write is atomic: the data go to a temporary file in the same folder, which
    is then renamed over ``path``.

    Args:
        half: store floating-point weights as float16 (half the size; they are
            widened to float32 on load). Used for the shipped starter models.

    Returns:
        The path written.
    """
    from napari_resunet import __version__

    path = Path(path)
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "model_config": model.config.to_dict(),
        "normalization": model.normalization.to_dict(),
        "state_dict": state,
        "state_sha256": _state_digest(state),
        "training": _to_plain(training or {}),
    }
    if model.instance_config is not None:
        payload["instance_config"] = model.instance_config.to_dict()
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    logger.info("Saved checkpoint %s", path)
    return path


@dataclass
class Checkpoint:
    """The validated contents of a checkpoint file (see the module docstring)."""

    model_config: ModelConfig
    normalization: NormalizationConfig
    state_dict: dict[str, torch.Tensor]
    package_version: str
    training: dict[str, Any] = field(default_factory=dict)
    instance_config: InstanceConfig | None = None

    def build(self, device: str | torch.device = "cpu") -> ResUNet:
        """Instantiate the network with these weights, in eval mode, on ``device``."""
        model = build_model(
            self.model_config,
            self.normalization,
            seed=None,
            instance_config=self.instance_config,
        )
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as err:
            raise CheckpointError(
                f"The weights do not fit the recorded architecture: {err}"
            ) from err
        return model.to(device).eval()


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint without building the model.

    Raises:
        CheckpointError: with a message that says what is wrong with the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    # torch.save writes a zip archive; very old torch versions a bare pickle.
    if magic != b"PK\x03\x04" and not magic.startswith(b"\x80"):
        raise CheckpointError(
            f"{path} is not a readable checkpoint: it is not a PyTorch file."
        )
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} was refused: it is not a plain napari-resunet checkpoint (it "
            f"contains objects that could run code when loaded). Details: "
            f"{str(err).splitlines()[0]}"
        ) from err
    except Exception as err:  # noqa: BLE001 - torch.load raises many types on junk
        raise CheckpointError(
            f"{path} is not a readable checkpoint (corrupt or truncated file?): {err}"
        ) from err
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a napari-resunet checkpoint (no "
            f"'format: {FORMAT_NAME}' entry)."
        )
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version!r}; this napari-resunet reads up to "
            f"{FORMAT_VERSION}. Upgrade napari-resunet."
        )
    missing = [
        k
        for k in ("model_config", "normalization", "state_dict", "state_sha256")
        if k not in raw
    ]
    if missing:
        raise CheckpointError(f"{path} lacks required entries: {', '.join(missing)}.")
    state = raw["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(f"{path}: 'state_dict' is not a mapping of tensors.")
    if _state_digest(state) != raw["state_sha256"]:
        raise CheckpointError(
            f"{path}: the weights do not match their recorded checksum; the file was "
            f"corrupted or modified after it was saved."
        )
    try:
        model_config = ModelConfig.from_dict(dict(raw["model_config"]))
        normalization = NormalizationConfig.from_dict(dict(raw["normalization"]))
        instance_config = (
            InstanceConfig.from_dict(dict(raw["instance_config"]))
            if raw.get("instance_config") is not None
            else None
        )
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid configuration: {err}") from err
    training = raw.get("training") or {}
    return Checkpoint(
        model_config=model_config,
        normalization=normalization,
        state_dict=state,
        package_version=str(raw.get("package_version", "unknown")),
        training=dict(training),
        instance_config=instance_config,
    )


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ResUNet, Checkpoint]:
    """Load a checkpoint and build its model (eval mode) on ``device``.

    Returns:
        ``(model, checkpoint)``; ``checkpoint.training`` holds the training metadata.

    Raises:
        CheckpointError: the file is missing, foreign, corrupt, tampered or unsafe.
    """
    ckpt = read_checkpoint(path)
    return ckpt.build(device), ckpt
