"""Plot the simulated user's queue against random patches on several BBBC039 pools.

Reads saved ``bench_active_learning.py --json`` results (no training) and draws,
per pool, the mean instance F1@0.5 of the queue and of random patches per round
with the standard error over seeds, and a last panel with queue − random over
all pools together.

    python benchmarks/plot_active_learning_pools.py \\
        --pool "fields 1-4" QUEUE.json QUEUE_MORE_SEEDS.json random:RANDOM.json \\
        --pool "fields 5-8" RUN.json \\
        --out docs/images/active_learning_bbbc039_pools.png

A pool is a label and one or more result files. Runs are matched by seed: a
seed's queue run comes from the first file that has one for it, its random run
likewise. A file written ``random:PATH`` gives only its random runs (its queue
runs are of an earlier queue). Seeds follow the order the files list them in.
A file written ``full:PATH`` gives only full supervision (the network trained
densely on the whole pool's truth for the rounds' total steps, as
``bench_active_learning.py --quick full`` writes it): drawn as a level across
the pool's panel and tabled beside the two strategies' late rounds.

It also prints, per pool, queue − random F1 in round 1 and over rounds 3–5 with
standard errors, seed-runs ahead, and the means of each block of ten seeds.
Where a new network's queue comes in a random order (``blind_order``, the
widget's behaviour), round 1 compares two random draws of patches: its spread
is what chance alone gives. ``--out`` is optional: without it only the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load_pool(files: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(queue F1, random F1), each ``(seeds, rounds)``, matched by seed, and the
    full-supervision F1 of the ``full:`` files' seeds (possibly none)."""
    queue_by_seed: dict[int, list] = {}
    random_by_seed: dict[int, list] = {}
    full_by_seed: dict[int, float] = {}
    for f in files:
        if f.startswith("full:"):
            saved = json.loads(Path(f.removeprefix("full:")).read_text())
            for seed, run in zip(saved["args"]["seeds"], saved["runs"]):
                full_by_seed.setdefault(seed, run["full"]["f1"])
            continue
        random_only = f.startswith("random:")
        saved = json.loads(Path(f.removeprefix("random:")).read_text())
        for seed, run in zip(saved["args"]["seeds"], saved["runs"]):
            if "queue" in run and not random_only:
                queue_by_seed.setdefault(seed, run["queue"])
            if "random" in run:
                random_by_seed.setdefault(seed, run["random"])
    seeds = list(queue_by_seed)
    missing = [s for s in seeds if s not in random_by_seed]
    if missing:
        raise SystemExit(f"no random runs for seeds {missing} in {files}")
    q = np.array([[row["f1"] for row in queue_by_seed[s]] for s in seeds])
    r = np.array([[row["f1"] for row in random_by_seed[s]] for s in seeds])
    return q, r, np.array(list(full_by_seed.values()), float)


def _se(x: np.ndarray) -> np.ndarray:
    """Standard error over the first axis (seeds): per round for ``(seeds,
    rounds)``, a scalar for one value per seed; zero for a single seed."""
    return x.std(0, ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.zeros(x.shape[1:])


def _blocks(x: np.ndarray, size: int = 10) -> str:
    return ", ".join(f"{x[i : i + size].mean():+.3f}" for i in range(0, len(x), size))


def headroom(pools: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> str:
    """A markdown table: per pool with full supervision, its F1 beside the mean
    F1 of the queue and of random patches over rounds 3-5 (SEs over seeds)."""
    lines = [
        "| pool | full supervision (SE, seeds) | random, rounds 3–5 (SE) "
        "| queue, rounds 3–5 (SE) | random − full | queue − full |",
        "|---|---|---|---|---:|---:|",
    ]
    for label, q, r, full in pools:
        if not len(full):
            continue
        fse = _se(full)
        late_q, late_r = q[:, 2:].mean(1), r[:, 2:].mean(1)
        sq, sr = _se(late_q), _se(late_r)
        lines.append(
            f"| {label} | {full.mean():.3f} ({fse:.3f}, {len(full)}) | "
            f"{late_r.mean():.3f} ({sr:.3f}) | {late_q.mean():.3f} ({sq:.3f}) | "
            f"{late_r.mean() - full.mean():+.3f} | {late_q.mean() - full.mean():+.3f} |"
        )
    return "\n".join(lines)


def summary(pools: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> str:
    """A markdown table: per pool, queue − random in round 1 and over rounds 3-5
    (mean, SE, seed-runs ahead, blocks of ten seeds), then all pools together."""
    lines = [
        "| pool | seeds | round 1 (SE) | round 1, blocks of 10 | rounds 3–5 (SE) "
        "| ahead in rounds 3–5 | rounds 3–5, blocks of 10 |",
        "|---|---:|---|---|---|---:|---|",
    ]
    rows = [(label, q - r) for label, q, r, _ in pools]
    if len(rows) > 1:
        rows.append(("all", np.concatenate([d for _, d in rows])))
    for label, d in rows:
        first, late = d[:, 0], d[:, 2:].mean(1)
        blocks = label != "all" or len(rows) == 1  # pooled blocks would mix pools
        se1, se3 = _se(first), _se(late)
        lines.append(
            f"| {label} | {len(d)} | {first.mean():+.3f} ({se1:.3f}) | "
            f"{_blocks(first) if blocks else ''} | {late.mean():+.3f} ({se3:.3f}) | "
            f"{int((late > 0).sum())} of {len(d)} | {_blocks(late) if blocks else ''} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--pool",
        nargs="+",
        action="append",
        required=True,
        metavar=("LABEL", "JSON"),
        help="a pool's label, then its result files",
    )
    p.add_argument("--out", help="the plot's file (PNG); without it only the table")
    args = p.parse_args()
    pools = [(spec[0], *load_pool(spec[1:])) for spec in args.pool]
    print(summary(pools))
    if any(len(full) for *_, full in pools):
        print()
        print(headroom(pools))
    if not args.out:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(pools) + 1  # one per pool, then the differences
    cols = min(3, panels)
    rows = -(-panels // cols)
    fig, grid = plt.subplots(
        rows, cols, figsize=(4.4 * cols, 3.8 * rows), squeeze=False
    )
    for ax in grid.flat[panels:]:  # an incomplete last row
        ax.remove()
    axes = list(grid.flat[:panels])
    for ax in axes[1:-1]:  # one F1 scale for all pools
        ax.sharey(axes[0])
    for ax, (label, q, r, full) in zip(axes, pools):
        x = np.arange(1, q.shape[1] + 1)
        if len(full):  # the dense reference: a level, not a curve
            ax.axhspan(
                full.mean() - _se(full),
                full.mean() + _se(full),
                color="0.6",
                alpha=0.25,
            )
            ax.axhline(
                full.mean(),
                color="0.35",
                lw=1.2,
                ls="-.",
                label=f"full supervision ({len(full)} seeds)",
            )
        for y, name, style in ((q, "queue", "o-"), (r, "random patches", "s--")):
            (line,) = ax.plot(x, y.mean(0), style, label=name)
            ax.fill_between(
                x,
                y.mean(0) - _se(y),
                y.mean(0) + _se(y),
                color=line.get_color(),
                alpha=0.2,
            )
        ax.set_title(f"BBBC039 pool: {label}\n{len(q)} seeds, mean ± SE")
        ax.set_xlabel("round (4 patches of 64² each)")
        ax.set_ylabel("instance F1@0.5, held out")
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    diff = np.concatenate([q - r for _, q, r, _ in pools])
    ax = axes[-1]
    x = np.arange(1, diff.shape[1] + 1)
    ax.errorbar(x, diff.mean(0), yerr=_se(diff), fmt="o-", capsize=3, color="k")
    for label, q, r, _ in pools:
        ax.plot(x, (q - r).mean(0), ".:", alpha=0.7, label=label)
    ax.axhline(0, color="0.5", lw=1)
    ax.set_title(f"queue − random, all pools\n{len(diff)} seed-runs, mean ± SE")
    ax.set_xlabel("round")
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"plot written to {args.out}")


if __name__ == "__main__":
    main()
