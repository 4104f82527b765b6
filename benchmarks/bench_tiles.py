"""Network throughput against tile size (the table behind automatic tile shapes).

Times the default ResUNet (eager, channels-last, BatchNorm folded) on one tile of
each size and prints million voxels per second. Repeat it a few times: single runs
vary by about 20% on a shared 2-core machine.

    python benchmarks/bench_tiles.py --dims 3 [--threads 2] [--repeats 3] [--bfloat16]

``--bfloat16`` runs the convolutions under bfloat16 autocast, as ``predict`` does
on CPUs that compute bfloat16 natively (the table's second curve).
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_time  # noqa: E402
from napari_resunet.core import ModelConfig, build_model  # noqa: E402
from napari_resunet.core.models.resunet import fold_batch_norm  # noqa: E402

SIZES = {
    3: [24, 40, 56, 64, 72, 80, 88, 96, 112, 128],
    2: [64, 128, 192, 256, 320, 384, 448, 512, 640, 768, 1024, 1536],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, choices=[2, 3], default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bfloat16", action="store_true", help="bfloat16 autocast")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    fmt = torch.channels_last_3d if args.dims == 3 else torch.channels_last
    model = fold_batch_norm(build_model(ModelConfig(spatial_dims=args.dims)).eval())
    model = model.to(memory_format=fmt)
    precision = "bfloat16" if args.bfloat16 else "float32"
    print(f"{args.dims}D default ResUNet, {args.threads} threads, {precision}")
    print("| tile | voxels | seconds | Mvoxels/s |\n|---|---:|---:|---:|")
    for side in SIZES[args.dims]:
        shape = (side,) * args.dims
        x = torch.randn(1, 1, *shape).contiguous(memory_format=fmt)
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bfloat16),
        ):
            model(x)
            sec = best_time(lambda x=x: model(x), args.repeats)
        vox = math.prod(shape)
        print(
            f"| {side}^{args.dims} | {vox} | {sec:.3f} | {vox / sec / 1e6:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
