"""Accuracy of the starter models on the validation splits, against classical baselines.

    python benchmarks/bench_accuracy.py [--isbi-steps 600] [--markdown out.md]
        [--test-time-flips 8]

- BBBC039 val (10 fields): ``nuclei2d`` instance F1@0.5 and mean AP@0.5:0.9, vs Otsu
  threshold + distance-transform watershed.
- FlyEM medulla val (75x250x250): ``em_boundaries3d`` boundary Dice (against the
  derived boundary map) and adapted Rand error / VI of its cells, vs Otsu
  (membranes are dark) + distance-transform watershed.
- ISBI 2012 val (slices 24-29): membrane Dice of a 2D model trained here on slices
  0-23 (non-commercial data: benchmark only, never shipped), vs Otsu.
- BBBC050 16-cell embryo: ``nuclei3d`` F1@0.5 (one volume: a smoke test).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

from napari_resunet.core import InferenceConfig, predict
from napari_resunet.core.inference.postprocess import labels_from_probabilities
from napari_resunet.core.inference.predict import flip_sets
from napari_resunet.core.metrics import (
    dice_per_class,
    match_instances,
    segmentation_scores,
)
from napari_resunet.core.models.zoo import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parents[1] / "bench-out"
# the networks' prediction settings (--test-time-flips sets the mirrorings)
ICFG = InferenceConfig(use_compile="never")


def _ours(name: str, model) -> str:
    flips = len(flip_sets(model.spatial_dims, ICFG.test_time_flips))
    return name if flips == 1 else f"{name}, {flips} test-time flips"


def otsu_watershed(
    image: np.ndarray, bright_objects: bool = True, min_distance: int = 5, sampling=None
) -> np.ndarray:
    """Classical baseline: Otsu threshold, then watershed on the distance transform."""
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    smooth = gaussian(image.astype(np.float32), sigma=1)
    fg = smooth > threshold_otsu(smooth)
    if not bright_objects:
        fg = ~fg
    fg = ndimage.binary_opening(fg, iterations=1)
    dist = ndimage.distance_transform_edt(fg, sampling=sampling)
    size = 2 * min_distance + 1
    peaks = (dist == ndimage.maximum_filter(dist, size=size)) & (dist > 0)
    markers, _ = ndimage.label(peaks, np.ones((3,) * image.ndim))
    return watershed(-dist, markers, mask=fg)


def _scores(pred, truth):
    rows = match_instances(pred, truth)
    return rows[0]["f1"], float(np.mean([r["ap"] for r in rows]))


def bench_bbbc039() -> list[str]:
    d = SHARED / "bbbc039_nuclei2d"
    names = json.loads((d / "split.json").read_text())["val"]
    model, _ = load_model("nuclei2d")
    icfg = ICFG
    ours, base = [], []
    t0 = time.perf_counter()
    for n in names:
        img = tifffile.imread(d / "images" / f"{n}.tif")
        truth = tifffile.imread(d / "labels" / f"{n}.tif")
        pred = labels_from_probabilities(
            predict(model, img, icfg), model.config, model.instance_config
        )
        ours.append(_scores(pred, truth))
        base.append(_scores(otsu_watershed(img), truth))
    sec = (time.perf_counter() - t0) / len(names)
    o, b = np.mean(ours, axis=0), np.mean(base, axis=0)
    return [
        f"### BBBC039 val ({len(names)} fields, 520x696), instance matching",
        "",
        "| method | F1@0.5 | mean AP@0.5:0.9 |",
        "|---|---:|---:|",
        f"| {_ours('nuclei2d starter model', model)} | {o[0]:.3f} | {o[1]:.3f} |",
        f"| Otsu + distance watershed | {b[0]:.3f} | {b[1]:.3f} |",
        "",
        f"Mean over fields (the empty field scores 1.0 when nothing is predicted). "
        f"{sec:.1f} s per field including post-processing.",
        "",
    ]


def bench_flyem() -> list[str]:
    d = SHARED / "flyem_medulla3d"
    img = tifffile.imread(d / "val_image.tif")
    truth = tifffile.imread(d / "val_labels.tif")
    bnd = tifffile.imread(d / "val_boundaries.tif").astype(np.uint8)
    model, _ = load_model("em_boundaries3d")
    t0 = time.perf_counter()
    probs = predict(model, img, ICFG)
    pred_bnd = (probs[2] > probs[1]).astype(np.uint8)
    cells = labels_from_probabilities(probs, model.config, model.instance_config)
    sec = time.perf_counter() - t0
    ours = segmentation_scores(cells, truth)
    dice = dice_per_class(pred_bnd, bnd, 2)[1]
    from skimage.filters import gaussian, threshold_otsu

    smooth = gaussian(img.astype(np.float32), sigma=1)
    base_bnd = (smooth < threshold_otsu(smooth)).astype(np.uint8)
    base_cells = otsu_watershed(img, bright_objects=True, min_distance=4)
    base = segmentation_scores(base_cells, truth)
    base_dice = dice_per_class(base_bnd, bnd, 2)[1]
    return [
        "### FlyEM medulla val (75x250x250, 94 neurons), 3D",
        "",
        "| method | boundary Dice | adapted Rand error | VI split | VI merge |",
        "|---|---:|---:|---:|---:|",
        f"| {_ours('em_boundaries3d starter model', model)} | {dice:.3f} | {ours['adapted_rand_error']:.3f} | "
        f"{ours['vi_split']:.2f} | {ours['vi_merge']:.2f} |",
        f"| Otsu + distance watershed | {base_dice:.3f} | {base['adapted_rand_error']:.3f} | "
        f"{base['vi_split']:.2f} | {base['vi_merge']:.2f} |",
        "",
        f"Prediction + watershed: {sec:.1f} s. Cells: {int(cells.max())} predicted.",
        "",
    ]


def bench_isbi(steps: int) -> list[str]:
    from napari_resunet.core import (
        ModelConfig,
        TrainConfig,
        TrainData,
        build_model,
        load_checkpoint,
        save_checkpoint,
        train,
    )

    d = SHARED / "isbi2012_em"
    img = tifffile.imread(d / "image.tif")
    mem = tifffile.imread(d / "membrane.tif")
    ckpt = OUT / f"isbi_membrane_{steps}.pt"
    t0 = time.perf_counter()
    reused = ckpt.is_file()
    if reused:
        model, _ = load_checkpoint(ckpt)
    else:
        model = build_model(ModelConfig(spatial_dims=2))
        cfg = TrainConfig(
            steps=steps,
            patch_shape=(1, 256, 256),
            batch_size=4,
            label_mode="classes",
            seed=0,
            val_every=0,
        )
        res = train(model, TrainData(img[:24], mem[:24]), cfg, show_progress=True)
        model = res.model
        OUT.mkdir(exist_ok=True)
        save_checkpoint(ckpt, model, res.metadata())
    trained = (
        f"{(time.perf_counter() - t0) / 60:.1f} min"
        if not reused
        else f"reusing {ckpt.name}"
    )
    probs = predict(model, img[24:], ICFG)
    dice = dice_per_class(probs.argmax(0), mem[24:], 2)[1]
    from skimage.filters import gaussian, threshold_otsu

    base = []
    for z in range(24, 30):
        s = gaussian(img[z].astype(np.float32), sigma=1)
        base.append((s < threshold_otsu(s)).astype(np.uint8))
    base_dice = dice_per_class(np.stack(base), mem[24:], 2)[1]
    return [
        "### ISBI 2012 val (slices 24-29), membrane Dice (benchmark only, never shipped)",
        "",
        "| method | membrane Dice |",
        "|---|---:|",
        f"| {_ours(f'2D ResUNet trained on slices 0-23 ({steps} steps, {trained})', model)} "
        f"| {dice:.3f} |",
        f"| Otsu (dark = membrane) | {base_dice:.3f} |",
        "",
    ]


def bench_bbbc050() -> list[str]:
    d = SHARED / "bbbc050_nuclei3d"
    tf = tifffile.TiffFile(d / "16_cell_stage_image.tif")
    vs = tf.shaped_metadata[0]["voxel_size_zyx_um"]
    img = tf.asarray()
    truth = tifffile.imread(d / "16_cell_stage_labels.tif")
    model, _ = load_model("nuclei3d")
    probs = predict(model, img, ICFG, voxel_size=vs)
    pred = labels_from_probabilities(probs, model.config, model.instance_config, vs)
    o = _scores(pred, truth)
    b = _scores(otsu_watershed(img, min_distance=3, sampling=vs), truth)
    return [
        "### BBBC050 16-cell embryo (trained on the 8-cell one), 3D nuclei",
        "",
        "| method | F1@0.5 | mean AP@0.5:0.9 | cells found / true |",
        "|---|---:|---:|---:|",
        f"| {_ours('nuclei3d starter model', model)} | {o[0]:.3f} | {o[1]:.3f} | {int(pred.max())} / {int(truth.max())} |",
        f"| Otsu + distance watershed | {b[0]:.3f} | {b[1]:.3f} | |",
        "",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=["bbbc039", "flyem", "isbi", "bbbc050"])
    p.add_argument("--isbi-steps", type=int, default=600)
    p.add_argument("--markdown")
    p.add_argument(
        "--test-time-flips",
        type=int,
        default=1,
        help="predict under this many mirrorings (InferenceConfig.test_time_flips)",
    )
    args = p.parse_args()
    global ICFG
    ICFG = ICFG.replace(test_time_flips=args.test_time_flips)
    lines: list[str] = []
    for name in args.only:
        part = {
            "bbbc039": bench_bbbc039,
            "flyem": bench_flyem,
            "bbbc050": bench_bbbc050,
            "isbi": lambda: bench_isbi(args.isbi_steps),
        }[name]()
        print("\n".join(part), flush=True)
        lines += part
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
