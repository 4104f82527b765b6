"""Train the starter models shipped in ``src/napari_resunet/data/models``.

Reproducible (fixed seeds, fixed splits) from the development data in
../shared/data. Only openly licensed training data is used:

- ``nuclei2d``: BBBC039v1 train split (40 fields, CC0), 2D instance model.
- ``em_boundaries3d``: FlyEM medulla train crop (z 0-175, CC BY 3.0), 3D instance
  model (cell interiors and boundaries of densely labelled neurons).
- ``nuclei3d``: BBBC050 8-cell-stage embryo (CC BY 3.0; one volume, 8 nuclei), 3D
  instance model: a demonstration, see its model card.

ISBI 2012 and VNC mito are non-commercial and are never used here.

    python scripts/train_starter_models.py [--only nuclei2d] [--steps-scale 0.1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_resunet.core import (
    InferenceConfig,
    ModelConfig,
    TrainConfig,
    TrainData,
    build_model,
    load_checkpoint,
    predict,
    save_checkpoint,
    train,
)
from napari_resunet.core.config import InstanceConfig
from napari_resunet.core.inference.postprocess import probabilities_to_instances
from napari_resunet.core.metrics import match_instances, segmentation_scores

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "src" / "napari_resunet" / "data" / "models"

RECIPES = {
    "nuclei2d": {
        "model": ModelConfig(spatial_dims=2, out_channels=3, task="instance"),
        "train": TrainConfig(
            patch_shape=(256, 256),
            batch_size=4,
            steps=2000,
            lr=2e-3,
            seed=0,
            augment_elastic=False,
            val_every=0,
        ),
        "data": "BBBC039v1 train split (40 fields, CC0 1.0)",
    },
    "em_boundaries3d": {
        "model": ModelConfig(spatial_dims=3, out_channels=3, task="instance"),
        "train": TrainConfig(
            patch_shape=(64, 64, 64),
            batch_size=2,
            steps=3000,
            lr=2e-3,
            seed=0,
            foreground_fraction=0.0,
            val_every=0,
        ),
        "data": "FlyEM medulla training_sample2, z 0-175 (CC BY 3.0, Janelia FlyEM)",
    },
    "nuclei3d": {
        "model": ModelConfig(spatial_dims=3, out_channels=3, task="instance"),
        "train": TrainConfig(
            patch_shape=(32, 64, 64),
            batch_size=2,
            steps=400,
            lr=2e-3,
            seed=0,
            val_every=0,
        ),
        "data": "BBBC050 / QCANet 8-cell-stage embryo (CC BY 3.0; MIT repository)",
    },
}


def load_training_data(name: str) -> tuple[list[TrainData], dict]:
    """Training images for a starter model and a description of them."""
    if name == "nuclei2d":
        d = SHARED / "bbbc039_nuclei2d"
        names = json.loads((d / "split.json").read_text())["train"]
        data = [
            TrainData(
                tifffile.imread(d / "images" / f"{n}.tif"),
                tifffile.imread(d / "labels" / f"{n}.tif"),
            )
            for n in names
        ]
        return data, {"fields": len(names)}
    if name == "em_boundaries3d":
        d = SHARED / "flyem_medulla3d"
        return [
            TrainData(
                tifffile.imread(d / "train_image.tif"),
                tifffile.imread(d / "train_labels.tif"),
            )
        ], {"z": [0, 175]}
    d = SHARED / "bbbc050_nuclei3d"
    return [
        TrainData(
            tifffile.imread(d / "8_cell_stage_image.tif"),
            tifffile.imread(d / "8_cell_stage_labels.tif"),
        )
    ], {"volume": "8_cell_stage"}


# Post-processing grids, searched on training data only (never on the validation
# split the benchmark reports). Dense neuron labels are scored by adapted Rand
# error, nuclei by F1 at IoU 0.5.
TUNE_GRID = {
    "nuclei2d": [InstanceConfig(seed_threshold=t) for t in (0.5, 0.7, 0.8, 0.9)],
    "em_boundaries3d": [
        InstanceConfig(seed_threshold=t, min_size=50) for t in (0.5, 0.7, 0.8, 0.9)
    ]
    + [
        InstanceConfig(
            seeds="distance", seed_threshold=0.5, min_size=50, seed_min_distance=d
        )
        for d in (4.0, 8.0, 12.0, 16.0, 24.0)
    ],
    "nuclei3d": [
        InstanceConfig(seed_threshold=t, min_size=100) for t in (0.5, 0.7, 0.9)
    ],
}


def _key(cfg: InstanceConfig) -> str:
    return (
        f"{cfg.seeds} threshold={cfg.seed_threshold} distance={cfg.seed_min_distance}"
    )


def tune_instance_config(
    name: str, model, data: list[TrainData]
) -> tuple[InstanceConfig, dict]:
    """Pick the watershed settings that score best on (a subset of) the training data."""
    data = data[:12]  # 2D: the first 12 training fields
    icfg = InferenceConfig(use_compile="never")
    probs = [predict(model, d.image, icfg) for d in data]
    scores = {}
    for cfg in TUNE_GRID[name]:
        vals = []
        for p, d in zip(probs, data):
            cells = probabilities_to_instances(p, cfg)
            if name == "em_boundaries3d":
                vals.append(-segmentation_scores(cells, d.labels)["adapted_rand_error"])
            else:
                vals.append(match_instances(cells, d.labels, (0.5,))[0]["f1"])
        scores[_key(cfg)] = float(np.mean(vals))
        print(f"  {name}: {_key(cfg)}: score {scores[_key(cfg)]:.4f}")
    best = max(TUNE_GRID[name], key=lambda c: scores[_key(c)])
    return best, {"grid_scores": scores, "chosen": best.to_dict()}


def tune_and_save(name: str, path: Path) -> None:
    model, ckpt = load_checkpoint(path)
    data, _ = load_training_data(name)
    best, info = tune_instance_config(name, model, data)
    model.instance_config = best
    meta = dict(ckpt.training)
    meta["postprocessing_tuning"] = info
    save_checkpoint(path, model, meta, half=True)  # float16 weights: half the size
    print(f"{name}: tuned {best}")


def train_one(name: str, steps_scale: float) -> Path:
    recipe = RECIPES[name]
    cfg: TrainConfig = recipe["train"]
    cfg = cfg.replace(steps=max(1, int(cfg.steps * steps_scale)))
    data, info = load_training_data(name)
    model = build_model(recipe["model"], seed=cfg.seed)
    t0 = time.perf_counter()
    result = train(model, data, cfg, show_progress=True)
    minutes = (time.perf_counter() - t0) / 60
    meta = result.metadata()
    meta["data"] = {"description": recipe["data"], **info}
    meta["wall_time_minutes"] = round(minutes, 1)
    meta["threads"] = torch.get_num_threads()
    # the weights ship in the package: keep the history short
    meta["history"] = {
        k: v[:: max(1, len(v) // 200)] for k, v in meta["history"].items()
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(OUT / f"{name}.pt", result.model, meta, half=True)
    losses = np.asarray(result.history["loss"])
    print(
        f"{name}: {cfg.steps} steps in {minutes:.1f} min, loss "
        f"{losses[:20].mean():.3f} -> {losses[-20:].mean():.3f}; wrote {path}"
    )
    tune_and_save(name, path)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    p.add_argument(
        "--steps-scale",
        type=float,
        default=1.0,
        help="multiply every recipe's steps (quick checks)",
    )
    p.add_argument(
        "--tune-only",
        action="store_true",
        help="only re-tune the post-processing of existing checkpoints",
    )
    args = p.parse_args()
    for name in args.only:
        if args.tune_only:
            tune_and_save(name, OUT / f"{name}.pt")
        else:
            train_one(name, args.steps_scale)


if __name__ == "__main__":
    main()
