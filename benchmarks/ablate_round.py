"""Which correction made a round worse? Train one round of the simulated user
again, leaving out one of its picks at a time.

Runs the annotation queue of ``bench_active_learning.py`` (the widget's
behaviour, untrained start) for ``--round`` rounds, keeping each round's network
and corrections. The last round is then trained again from the round before's
network, with the same seed and settings, once with all its picks and once
without each pick's patch; each network is scored on the held-out fields
(Dice, F1@0.5) with the pixels it calls foreground where the truth has none.

    python benchmarks/ablate_round.py --pool 8 --pool-first 12 --seed 20 --round 4

BBBC039 only (needs ../shared/data).
"""

from __future__ import annotations

import argparse

import bench_active_learning as bench
from napari_resunet.core import predict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", type=int, default=8)
    p.add_argument("--pool-first", type=int, default=12)
    p.add_argument("--seed", type=int, default=20)
    p.add_argument("--round", type=int, default=4, help="the round to train again")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument(
        "--intensity-contrast",
        type=float,
        help="fine-tuning's contrast augmentation, exp(±C) (default: the widget's)",
    )
    p.add_argument(
        "--retrain-mix",
        choices=["auto", "on", "off", "argmax", "truth"],
        default="auto",
        help="the class mix of the round trained again (default: the widget's)",
    )
    p.add_argument(
        "--retrain-lr", type=float, help="the rate of the round trained again"
    )
    p.add_argument(
        "--all-only",
        action="store_true",
        help="train the round again with all its picks only (no leaving out)",
    )
    args = p.parse_args()
    if args.intensity_contrast is not None:
        bench.TRAIN_CHANGES["intensity_contrast"] = args.intensity_contrast
    if args.round < 2:
        p.error("--round must be 2 or more: round 1 starts from an untrained network")
    task = bench.load_bbbc039(args.pool, args.pool_first)
    networks, masks = [], []
    own_train = bench.train

    def keep(*a, **kw):  # the bench trains through core.train: keep each network
        result = own_train(*a, **kw)
        networks.append(result.model)
        return result

    bench.train = keep
    rows = bench.run_strategy(
        "queue",
        task,
        "untrained",
        args.round,
        args.k,
        args.patch,
        args.steps,
        None,
        args.seed,
        "auto",
        "auto",
        record=masks,
    )
    bench.train = own_train
    before, picks = networks[-2], rows[-1]["picks"]

    def retrain(leave_out: int | None):
        ms = [m.copy() for m in masks[-2]]
        for j, (i, y, x, _) in enumerate(picks):
            if j != leave_out:
                ms[i][y : y + args.patch, x : x + args.patch] = True
        cfg, data = bench.round_data(
            before,
            task,
            ms,
            "untrained",
            args.steps,
            args.retrain_lr,
            args.seed + args.round,
            trained=True,
            mix=args.retrain_mix,
        )
        return own_train(before, data, cfg).model

    def report(name: str, model) -> None:
        s = bench.scores(model, task)
        fp = [
            int(((predict(model, img, bench.ICFG).argmax(0) > 0) & (truth == 0)).sum())
            for (img, _), truth in zip(task.held, task.held_truth)
        ]
        print(
            f"{name:38s} Dice {s['dice']:.3f} F1@0.5 {s['f1']:.3f} "
            f"false-positive px per held-out field {fp}",
            flush=True,
        )

    report(f"round {args.round - 1}", before)
    report(f"round {args.round}, all picks", retrain(None))
    for j, (i, y, x, _) in enumerate([] if args.all_only else picks):
        field = args.pool_first + i + 1
        report(f"without pick {j + 1} (field {field}, y {y}, x {x})", retrain(j))


if __name__ == "__main__":
    main()
