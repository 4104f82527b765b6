"""Time the Annotation queue's second opinion (core.committee) on BBBC039 fields.

    python benchmarks/bench_committee.py [--fields 1] [--patches 4 20] [--repeats 3]

On ``--fields`` training fields side by side (a stack, as the queue sees a stack
of fields), with the truth pasted into ``--patches`` random 64-pixel patches
as the corrections, it prints the best-of-``--repeats`` wall time of each stage
of :func:`napari_resunet.core.committee.iter_committee`: the pixel features
(computed once per image and kept by the queue), the forest's fit on the
corrections, the forest's cells and the comparison with the network's cells
(here the truth stands in for the network's: the comparison's cost does not
depend on who made the cells). Needs ``../shared/data/bbbc039_nuclei2d``.

With ``--ranking`` it also times the Annotation queue's whole job on the first
field after a fine-tuning round (``ui._queue_job.iter_queue_uncertainty``, the
``nuclei2d`` starter model, the round's unmirrored pass kept, the features kept
from the ranking before, the truth in the last ``--patches`` count of patches):
with 3 flip passes and no second opinion, and with the forest's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_resunet.core.committee import (
    disputed_cells,
    fit_forest,
    forest_cells,
    pixel_features,
)
from napari_resunet.core.config import NormalizationConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbbc039_nuclei2d"


def best(fn, repeats: int):
    """(best wall time in s, last result) of ``fn()`` over ``repeats`` calls."""
    out, t_best = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t0)
    return t_best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fields", type=int, default=1)
    p.add_argument("--patches", type=int, nargs="+", default=[4, 20])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ranking", action="store_true")
    args = p.parse_args()
    split = json.loads((DATA / "split.json").read_text())
    names = [n for n in split["train"] if "F13_s7" not in n][: args.fields]
    image = np.stack([tifffile.imread(DATA / "images" / f"{n}.tif") for n in names])
    truth = np.stack([tifffile.imread(DATA / "labels" / f"{n}.tif") for n in names])
    if args.fields == 1:
        image, truth = image[0], truth[0]
    print(f"{args.fields} field(s) {image.shape}, {torch.get_num_threads()} threads")
    norm = NormalizationConfig()
    t, features = best(lambda: pixel_features(image, norm), args.repeats)
    print(
        f"features: {t:.2f} s ({features.shape[-1]} per pixel, "
        f"{features.nbytes / 2**20:.0f} MiB)"
    )
    rng = np.random.default_rng(0)
    for n in args.patches:
        mask = np.zeros(truth.shape, bool)
        for _ in range(n):
            plane = () if truth.ndim == 2 else (int(rng.integers(truth.shape[0])),)
            y = int(rng.integers(0, truth.shape[-2] - 64))
            x = int(rng.integers(0, truth.shape[-1] - 64))
            mask[(*plane, slice(y, y + 64), slice(x, x + 64))] = True
        t_fit, forest = best(
            lambda m=mask: fit_forest(features, truth, m), args.repeats
        )
        t_cells, cells = best(lambda f=forest: forest_cells(f, features), args.repeats)
        t_cmp, _ = best(lambda c=cells: disputed_cells(truth, c), args.repeats)
        print(
            f"{n} patches ({int(mask.sum())} px): fit {t_fit:.2f} s, forest's "
            f"cells {t_cells:.2f} s, comparison {t_cmp:.2f} s; after the features: "
            f"{t_fit + t_cells + t_cmp:.2f} s"
        )
    if args.ranking:
        field = (image, truth) if args.fields == 1 else (image[0], truth[0])
        ranking(*field, mask if args.fields == 1 else mask[0], args.repeats)


def ranking(image, truth, mask, repeats: int) -> None:
    """The queue's job after a round, without and with the forest's opinion."""
    from napari_resunet.core import InferenceConfig
    from napari_resunet.core.inference.predict import iter_predict
    from napari_resunet.core.models.zoo import load_model
    from napari_resunet.core.progress import run_generator
    from napari_resunet.ui._model_store import FirstPass
    from napari_resunet.ui._queue_job import CommitteeInputs, iter_queue_uncertainty

    model, _ = load_model("nuclei2d")
    cfg = InferenceConfig(use_compile="never", test_time_flips=1)
    first = run_generator(iter_predict(model, image, cfg), False, "p")
    kept = FirstPass(None, image, None, cfg, None, first)
    labels = np.where(mask, truth, 0)
    icfg = getattr(model, "instance_config", None)
    features = None

    def job(opinion: bool):
        inputs = CommitteeInputs(labels, mask, icfg, features) if opinion else None
        gen = iter_queue_uncertainty(model, image, cfg, 3, None, None, 0, kept, inputs)
        return run_generator(gen, False, "q")

    warm = job(True)  # the ranking before: the features are kept from it
    features = (image, warm.committee.features)
    for opinion in (False, True):
        t, out = best(lambda o=opinion: job(o), repeats)
        what = "second opinion" if opinion else "3 flip passes, no second opinion"
        assert (out.committee is not None) == opinion
        print(f"queue ranking after a round, {what}: {t:.2f} s")


if __name__ == "__main__":
    main()
