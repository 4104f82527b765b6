"""Work on a session's model versions: score them on held-back patches, segment
one image with several (pure Python, no Qt; the Model versions widget runs these
generators as jobs)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from napari_resunet.core.cell_ids import continue_ids
from napari_resunet.core.checks import check_image
from napari_resunet.core.config import InferenceConfig, InstanceConfig
from napari_resunet.core.inference.postprocess import labels_from_probabilities
from napari_resunet.core.inference.predict import (
    iter_predict,
    predict,
    prediction_steps,
)
from napari_resunet.core.metrics import dice_per_class
from napari_resunet.core.progress import Progress, relay


def iter_held_back_scores(
    models: list[Any], crops: list[tuple[np.ndarray, np.ndarray]]
) -> Generator[Progress, None, list[float | None]]:
    """Mean foreground Dice of each model on ``(image, labels)`` crops, one
    :class:`Progress` per crop and model; ``None`` for a model when there are no
    crops."""
    cfg = InferenceConfig(use_compile="never")
    out: list[float | None] = []
    total = len(models) * len(crops)
    for k, model in enumerate(models):
        scores = []
        for j, (image, truth) in enumerate(crops):
            probs = predict(model, np.ascontiguousarray(image), cfg)
            pred = labels_from_probabilities(probs, model.config, model.instance_config)
            scores.append(
                dice_per_class(
                    (pred > 0).astype(np.uint8), (truth > 0).astype(np.uint8), 2
                )[1]
            )
            yield Progress(k * len(crops) + j + 1, total, "held-back patches", "score")
        out.append(float(np.mean(scores)) if scores else None)
    return out


def iter_compare(
    models: list[tuple[int, Any]],
    image: np.ndarray,
    channel_axis: int | None = None,
    voxel_size: tuple[float, ...] | None = None,
    instance_cfg: InstanceConfig | None = None,
    cfg: InferenceConfig | None = None,
) -> Generator[Progress, None, list[tuple[int, np.ndarray]]]:
    """Segment ``image`` with each ``(number, model)``, reporting tile progress.

    Cell models use ``instance_cfg`` (the settings the working labels were
    made with) when given, else each model's own tuned settings; ``cfg`` the
    prediction settings (default: no compiling, otherwise defaults). A cell of a
    later model that matches one of the first model's takes its id
    (:func:`~napari_resunet.core.cell_ids.continue_ids`).

    Returns:
        ``(number, labels)`` per model, in order.
    """
    cfg = cfg or InferenceConfig(use_compile="never")
    out = []
    batches = [  # checks the image against every model before any work
        prediction_steps(m, check_image(image, m.config, channel_axis), cfg, voxel_size)
        for _, m in models
    ]
    for k, (number, model) in enumerate(models):
        probs = yield from relay(
            iter_predict(model, image, cfg, channel_axis, voxel_size),
            sum(batches[:k]),
            sum(batches),
            f"v{number}: ",
            "compare",
        )
        labels = labels_from_probabilities(
            probs, model.config, instance_cfg or model.instance_config
        )
        if out and model.config.task == "instance" == models[0][1].config.task:
            # the same cell in the same colour in both: what differs stands out
            # (each watershed numbers its cells afresh)
            first = out[0][1]
            labels = continue_ids(labels, first, np.ones(first.shape, bool))
        out.append((number, labels))
    return out
