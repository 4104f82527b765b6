"""Simulated-user benchmark: does the annotation queue pick better patches?

An oracle user, playing from ground truth, starts from an untrained network and in
each round corrects the top-k queue patches (pastes the truth there, marks them
reviewed), then fine-tunes on all corrections so far (the widget's settings).
Compared in the same run, with the same annotation budget:

- random patch choice;
- an ilastik-style random forest (scikit-image ``multiscale_basic_features`` +
  ``fit_segmenter``) trained on exactly the voxels the queue had annotated, its
  foreground going through the same distance-seeded watershed;
- the network fully supervised on all ground truth of the pool images.

    python benchmarks/bench_active_learning.py [--rounds 5] [--k 4] [--plot out.png]

BBBC039 (2D): pool = 4 training fields, held out = the 10 validation fields.
Needs ``pip install -e .[bench]`` (scikit-learn, matplotlib) and ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile

from napari_resunet.core import (
    InferenceConfig,
    ModelConfig,
    TrainData,
    build_model,
    predict,
    train,
)
from napari_resunet.core.config import (
    InstanceConfig,
    NormalizationConfig,
    finetune_config,
)
from napari_resunet.core.inference.postprocess import (
    labels_from_probabilities,
    probabilities_to_instances,
)
from napari_resunet.core.metrics import dice_per_class, match_instances
from napari_resunet.core.normalize import normalize_image
from napari_resunet.core.progress import run_generator
from napari_resunet.core.uncertainty import iter_uncertainty, rank_patches

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ICFG = InferenceConfig(use_compile="never")


def load_bbbc039(n_pool: int):
    d = SHARED / "bbbc039_nuclei2d"
    split = json.loads((d / "split.json").read_text())

    def read(names):
        return [
            (
                tifffile.imread(d / "images" / f"{n}.tif"),
                tifffile.imread(d / "labels" / f"{n}.tif"),
            )
            for n in names
        ]

    # skip the empty field: an oracle learns nothing from it
    pool_names = [n for n in split["train"] if "F13_s7" not in n][:n_pool]
    return read(pool_names), read(split["val"])


def load_flyem(size: int):
    """Pool: a 48 x size x size block of the training crop; held out: the same
    block of the validation crop. Labels: the derived boundary map (0/1)."""
    d = SHARED / "flyem_medulla3d"
    sl = (slice(0, 48), slice(0, size), slice(0, size))
    pool = [
        (
            tifffile.imread(d / "train_image.tif")[sl],
            tifffile.imread(d / "train_boundaries.tif")[sl].astype(np.uint8),
        )
    ]
    val = [
        (
            tifffile.imread(d / "val_image.tif")[sl],
            tifffile.imread(d / "val_boundaries.tif")[sl].astype(np.uint8),
        )
    ]
    return pool, val


def score_model(model, val) -> tuple[float, float]:
    if model.config.task == "semantic":  # boundary classes: Dice only
        dice = [
            dice_per_class(
                predict(model, img, ICFG).argmax(0).astype(np.uint8), lab, 2
            )[1]
            for img, lab in val
        ]
        return float(np.mean(dice)), float("nan")
    dice, f1 = [], []
    for img, lab in val:
        probs = predict(model, img, ICFG)
        cells = labels_from_probabilities(probs, model.config, InstanceConfig())
        dice.append(
            dice_per_class((cells > 0).astype(np.uint8), (lab > 0).astype(np.uint8), 2)[
                1
            ]
        )
        f1.append(match_instances(cells, lab, (0.5,))[0]["f1"])
    return float(np.mean(dice)), float(np.mean(f1))


def new_model(dims: int, seed: int):
    """2D: a cell (instance) network; 3D: boundary vs interior classes."""
    if dims == 2:
        cfg = ModelConfig(spatial_dims=2, out_channels=3, task="instance")
    else:
        cfg = ModelConfig(spatial_dims=3)
    return build_model(cfg, seed=seed)


def run_strategy(strategy, pool, val, rounds, k, patch, steps, seed, record_masks=None):
    rng = np.random.default_rng(seed)
    dims = pool[0][0].ndim
    model = new_model(dims, seed)
    masks = [np.zeros(lab.shape, bool) for _, lab in pool]
    rows = []
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        candidates = []
        for i, (img, _) in enumerate(pool):
            if strategy == "queue":
                res = run_generator(
                    iter_uncertainty(model, img, ICFG, n_flips=3), False, "u"
                )
                ranked = rank_patches(
                    res.uncertainty, (patch,) * dims, exclude=masks[i]
                )
            else:
                ranked = rank_patches(
                    np.zeros(img.shape, np.float32), (patch,) * dims, exclude=masks[i]
                )
            candidates += [(e.score, i, e.slices) for e in ranked]
        if strategy == "queue":
            candidates.sort(key=lambda c: -c[0])
        else:
            order = rng.permutation(len(candidates))
            candidates = [candidates[j] for j in order]
        for _, i, sl in candidates[:k]:
            masks[i][sl] = True  # the oracle pastes the truth there: annotated
        data = [TrainData(img, lab, m) for (img, lab), m in zip(pool, masks) if m.any()]
        cfg = finetune_config(dims, steps=steps, seed=seed + r)
        model = train(model, data, cfg).model
        elapsed = time.perf_counter() - t0
        dice, f1 = score_model(model, val)
        rows.append(
            {
                "round": r,
                "dice": dice,
                "f1": f1,
                "seconds": elapsed,
                "annotated": int(sum(m.sum() for m in masks)),
            }
        )
        print(
            f"{strategy} round {r}: Dice {dice:.3f} F1@0.5 {f1:.3f} "
            f"({elapsed:.1f} s, {rows[-1]['annotated']} px annotated)",
            flush=True,
        )
        if record_masks is not None:
            record_masks.append([m.copy() for m in masks])
    return rows


def _features(img):
    from skimage.feature import multiscale_basic_features

    x = normalize_image(img, NormalizationConfig())
    return multiscale_basic_features(
        x,
        intensity=True,
        edges=True,
        texture=True,
        sigma_min=1,
        sigma_max=16 if img.ndim == 2 else 8,
    ).astype(np.float32)


def run_forest(pool, val, masks_per_round, seed):
    from skimage.future import fit_segmenter
    from sklearn.ensemble import RandomForestClassifier

    pool_feats = [_features(img) for img, _ in pool]
    val_feats = [_features(img) for img, _ in val]
    rows = []
    for r, masks in enumerate(masks_per_round, start=1):
        t0 = time.perf_counter()
        # fit_segmenter trains on the pixels whose label is > 0: annotated pixels
        # get 1 (background) or 2 (foreground), the pool fields stacked along Y
        labels = np.concatenate(
            [
                np.where(m, (lab > 0).astype(np.uint8) + 1, 0)
                for (_, lab), m in zip(pool, masks)
            ]
        )
        clf = RandomForestClassifier(
            n_estimators=50, n_jobs=2, max_depth=10, random_state=seed
        )
        clf = fit_segmenter(labels, np.concatenate(pool_feats), clf)
        dice, f1 = [], []
        for (img, lab), f in zip(val, val_feats):
            p_fg = clf.predict_proba(f.reshape(-1, f.shape[-1]))[:, 1].reshape(
                img.shape
            )
            dice.append(
                dice_per_class(
                    (p_fg > 0.5).astype(np.uint8), (lab > 0).astype(np.uint8), 2
                )[1]
            )
            if img.ndim == 3:  # boundary maps: no instances to match
                f1.append(float("nan"))
                continue
            probs = np.stack([1 - p_fg, p_fg, np.zeros_like(p_fg)]).astype(np.float32)
            cells = probabilities_to_instances(
                probs, InstanceConfig(seeds="distance", seed_min_distance=6)
            )
            f1.append(match_instances(cells, lab, (0.5,))[0]["f1"])
        rows.append(
            {
                "round": r,
                "dice": float(np.mean(dice)),
                "f1": float(np.mean(f1)),
                "seconds": time.perf_counter() - t0,
                "annotated": int(sum(m.sum() for m in masks)),
            }
        )
        print(
            f"forest round {r}: Dice {rows[-1]['dice']:.3f} F1@0.5 {rows[-1]['f1']:.3f}",
            flush=True,
        )
    return rows


def run_full(pool, val, steps, seed):
    dims = pool[0][0].ndim
    model = new_model(dims, seed)
    cfg = finetune_config(dims, steps=steps, seed=seed)
    t0 = time.perf_counter()
    model = train(model, [TrainData(img, lab) for img, lab in pool], cfg).model
    dice, f1 = score_model(model, val)
    print(
        f"full supervision ({steps} steps): Dice {dice:.3f} F1@0.5 {f1:.3f}", flush=True
    )
    return {"dice": dice, "f1": f1, "seconds": time.perf_counter() - t0, "steps": steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["bbbc039", "flyem"], default="bbbc039")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--k", type=int, default=4, help="patches corrected per round")
    p.add_argument("--patch", type=int, help="patch side (default 64 in 2D, 24 in 3D)")
    p.add_argument("--steps", type=int, help="steps per round (default 60 / 40)")
    p.add_argument(
        "--pool", type=int, default=4, help="training fields to annotate (2D)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot")
    p.add_argument("--json")
    args = p.parse_args()
    flyem = args.dataset == "flyem"
    args.patch = args.patch or (24 if flyem else 64)
    args.steps = args.steps or (40 if flyem else 60)
    pool, val = load_flyem(160) if flyem else load_bbbc039(args.pool)
    masks = []
    queue = run_strategy(
        "queue",
        pool,
        val,
        args.rounds,
        args.k,
        args.patch,
        args.steps,
        args.seed,
        masks,
    )
    rand = run_strategy(
        "random", pool, val, args.rounds, args.k, args.patch, args.steps, args.seed
    )
    forest = run_forest(pool, val, masks, args.seed)
    full = run_full(pool, val, args.steps * args.rounds, args.seed)
    result = {
        "queue": queue,
        "random": rand,
        "forest": forest,
        "full": full,
        "args": vars(args),
    }
    print(
        "\n| round | annotated px | queue Dice | queue F1@0.5 | random Dice | random F1@0.5 | forest Dice | forest F1@0.5 | queue round (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for q, r, f in zip(queue, rand, forest):
        print(
            f"| {q['round']} | {q['annotated']} | {q['dice']:.3f} | {q['f1']:.3f} | {r['dice']:.3f} | "
            f"{r['f1']:.3f} | {f['dice']:.3f} | {f['f1']:.3f} | {q['seconds']:.1f} |"
        )
    print(
        f"\nfull supervision on the whole pool ({full['steps']} steps): "
        f"Dice {full['dice']:.3f}, F1@0.5 {full['f1']:.3f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))  # FlyEM: one panel used
        panels = [(axes[0], "dice", "boundary Dice" if flyem else "foreground Dice")]
        if not flyem:
            panels.append((axes[1], "f1", "instance F1@0.5"))
        else:
            axes[1].set_visible(False)
        for ax, key, title in panels:
            for name, rows, style in (
                ("queue (uncertainty)", queue, "o-"),
                ("random patches", rand, "s--"),
                ("random forest, same pixels", forest, "^:"),
            ):
                ax.plot(
                    [r["annotated"] / 1e3 for r in rows],
                    [r[key] for r in rows],
                    style,
                    label=name,
                )
            ax.axhline(full[key], color="k", lw=1, label="full supervision")
            ax.set_xlabel(f"annotated {'voxels' if flyem else 'pixels'} (thousands)")
            ax.set_title(f"{'FlyEM val' if flyem else 'BBBC039 val'}: {title}")
            ax.grid(alpha=0.3)
        axes[0].legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
