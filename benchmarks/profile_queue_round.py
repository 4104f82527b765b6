"""Where the time of a simulated user's BBBC039 queue round goes, part by part.

Times the parts of ``bench_active_learning.py``'s queue round (untrained start,
the widget's behaviour: the forest's second opinion from round 2, each patch
weighed by its typicality) on one pool of four fields: the forest's fit, the
network's prediction of the pool (one pass a field), the forest's cells and the
cells in dispute, the patches' typicality, and the round's fine-tuning. The
patches corrected each round are drawn at random (the parts' cost hardly
depends on which patches they are).

    python benchmarks/profile_queue_round.py                       # as it runs here
    taskset -c 0 python benchmarks/profile_queue_round.py --threads 1 --float32

``--threads 1 --float32`` on one core stands in for a slower CPU without
bfloat16 (docs/benchmarks.md, "round times on a CPU without bfloat16").
BBBC039 only (needs ../shared/data).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import bench_active_learning as bench
from napari_resunet.core.config import InferenceConfig
from napari_resunet.core.ordering import patch_typicality
from napari_resunet.core.patches import rank_patches
from napari_resunet.core.progress import run_generator
from napari_resunet.core.training.trainer import train
from napari_resunet.core.uncertainty import iter_uncertainty


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--float32",
        action="store_true",
        help="predict and fine-tune in float32 (as on a CPU without bfloat16)",
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--seed", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    precision = "float32" if args.float32 else "auto"
    bench.ICFG = InferenceConfig(use_compile="never", precision=precision)
    bench.TRAIN_PRECISION["precision"] = precision
    task = bench.load_bbbc039(4, 0)
    t = time.perf_counter()
    bench.POOL_FEATURES[:] = [bench._features(img) for img, _ in task.pool]
    print(
        f"{args.threads} thread(s), {precision}: the forest's features of the "
        f"pool, once a session: {time.perf_counter() - t:.2f} s"
    )
    model = bench.initial_model(task, "untrained", args.seed)
    masks = [np.zeros(lab.shape, bool) for _, lab in task.pool]
    rng = np.random.default_rng(args.seed)

    def correct_four() -> None:
        for _ in range(4):
            i = int(rng.integers(len(masks)))
            y, x = (int(rng.integers(0, s - 64)) for s in masks[i].shape)
            masks[i][y : y + 64, x : x + 64] = True

    for r in range(1, args.rounds + 1):
        trained = r > 1
        parts: dict[str, float] = {}
        if trained:
            t = time.perf_counter()
            forest = bench.committee_forest(task, masks, args.seed + r)
            parts["forest fit"] = time.perf_counter() - t
            parts["prediction"] = parts["cells in dispute"] = 0.0
            for i, (img, _) in enumerate(task.pool):
                t = time.perf_counter()
                res = run_generator(
                    iter_uncertainty(model, img, bench.ICFG, n_flips=1), False, "u"
                )
                parts["prediction"] += time.perf_counter() - t
                t = time.perf_counter()
                score = bench.committee_disagreement(
                    res.probabilities, model, forest, i
                )
                rank_patches(score, (64, 64), exclude=masks[i])
                parts["cells in dispute"] += time.perf_counter() - t
            t = time.perf_counter()
            for feats in bench.POOL_FEATURES:  # as the widget: every refresh
                patch_typicality(feats, (64, 64))
            parts["typicality"] = time.perf_counter() - t
        correct_four()
        cfg, data = bench.round_data(
            model, task, masks, "untrained", args.steps, None, args.seed + r, trained
        )
        t = time.perf_counter()
        model = train(model, data, cfg).model
        parts[f"{args.steps} steps"] = time.perf_counter() - t
        text = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        print(f"round {r}: {text}; all {sum(parts.values()):.2f} s", flush=True)


if __name__ == "__main__":
    main()
