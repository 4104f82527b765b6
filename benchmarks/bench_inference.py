"""Inference speed: napari-resunet's tiled ``predict`` vs MONAI's sliding window.

Runs each case in its own subprocess (so peak RSS is per case) on the same
network and the same volume, with the same number of threads, and prints voxels/s,
the speed ratio, peak RSS and the network's achieved GFLOP/s as a fraction of a
measured sgemm peak.

    python benchmarks/bench_inference.py                 # full run (a few minutes)
    python benchmarks/bench_inference.py --quick         # small sizes, smoke check
    python benchmarks/bench_inference.py --markdown out.md

MONAI is only needed here (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, HERE)
    return torch


def _volume(shape, seed=0):
    import numpy as np

    from napari_resunet.core.synthetic import make_blobs

    n = max(4, int(np.prod(shape) / 40_000))
    img, _ = make_blobs(
        shape, n_objects=n, radius=10 if len(shape) == 2 else 6, seed=seed
    )
    return img


def _model(dims: int):
    from napari_resunet.core import ModelConfig, build_model

    return build_model(ModelConfig(spatial_dims=dims)).eval()


def case_sgemm(args) -> dict:
    _setup(args.threads)
    from _common import sgemm_peak_gflops

    return {"sgemm_gflops": sgemm_peak_gflops()}


def case_ours(args) -> dict:
    torch = _setup(args.threads)
    from _common import peak_rss_mib
    from napari_resunet.core import InferenceConfig, predict

    img = _volume(args.shape)
    model = _model(len(args.shape))
    cfg = InferenceConfig(
        tile_shape=None if args.auto_tiles else tuple(args.tile),
        overlap=args.overlap,
        batch_size=args.batch,
        blend="gaussian",
        use_compile=args.compile,
        device="cpu",
        precision=args.precision,
    )
    from napari_resunet.core.device import resolve_precision
    from napari_resunet.core.inference.predict import make_tile_plan

    plan = make_tile_plan(model, img.shape, cfg)
    t0 = time.perf_counter()
    predict(model, img, cfg)
    first = time.perf_counter() - t0
    dtype = resolve_precision(cfg.precision, torch.device("cpu"))
    out = {
        "first_s": first,
        "tile": "x".join(map(str, plan.tile_shape)) + f" x{plan.n_tiles}",
        "precision": "bfloat16" if dtype is not None else "float32",
    }
    if args.compile == "always":  # second call reuses the compiled graph
        t0 = time.perf_counter()
        predict(model, img, cfg)
        out["warm_s"] = time.perf_counter() - t0
    out["seconds"] = out.get("warm_s", first)
    out["voxels_per_s"] = float(img.size) / out["seconds"]
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def case_monai(args) -> dict:
    torch = _setup(args.threads)
    from monai.inferers import sliding_window_inference

    from _common import peak_rss_mib
    from napari_resunet.core.normalize import normalize_image

    img = _volume(args.shape)
    model = _model(len(args.shape))
    x = torch.from_numpy(normalize_image(img, model.normalization))[None, None]
    t0 = time.perf_counter()
    with torch.inference_mode():
        logits = sliding_window_inference(
            x,
            tuple(args.tile),
            args.batch,
            model,
            overlap=args.overlap,
            mode="gaussian",
        )
        torch.softmax(logits, 1)
    sec = time.perf_counter() - t0
    return {
        "seconds": sec,
        "voxels_per_s": float(img.size) / sec,
        "peak_rss_mib": peak_rss_mib(),
    }


def case_network(args) -> dict:
    """Network-only throughput on a batch of tiles: eager, channels-last, compiled."""
    torch = _setup(args.threads)
    from _common import best_time, conv_flops
    from napari_resunet.core.models.resunet import fold_batch_norm

    dims = len(args.shape)
    model = fold_batch_norm(_model(dims))
    x = torch.randn(args.batch, 1, *args.tile)
    flops = conv_flops(model, x)
    fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
    out = {"gflop_per_batch": flops / 1e9}
    with torch.inference_mode():
        out["eager_s"] = best_time(lambda: model(x))
        m_cl = model.to(memory_format=fmt)
        x_cl = x.contiguous(memory_format=fmt)
        out["channels_last_s"] = best_time(lambda: m_cl(x_cl))
        compiled = torch.compile(m_cl, dynamic=False)
        t0 = time.perf_counter()
        compiled(x_cl)
        out["compile_warmup_s"] = time.perf_counter() - t0
        out["compiled_s"] = best_time(lambda: compiled(x_cl))
    for k in ("eager", "channels_last", "compiled"):
        out[f"{k}_gflops"] = flops / out[f"{k}_s"] / 1e9
    return out


CASES = {
    "sgemm": case_sgemm,
    "ours": case_ours,
    "monai": case_monai,
    "network": case_network,
}


def _run(case: str, extra: list[str]) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--case", case, *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"case {case} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _suite(label, shape, tile, args, peak) -> list[str]:
    common = [
        "--shape",
        *map(str, shape),
        "--tile",
        *map(str, tile),
        "--overlap",
        str(args.overlap),
        "--batch",
        str(args.batch),
        "--threads",
        str(args.threads),
    ]
    net = _run("network", common)
    monai = _run("monai", common)
    # the engines compared in float32, the arithmetic MONAI's network runs in
    f32 = [*common, "--precision", "float32"]
    eager = _run("ours", [*f32, "--compile", "never"])
    comp = _run("ours", [*f32, "--compile", "always"])
    auto = _run("ours", [*f32, "--compile", "auto"])
    bf16 = _run("ours", [*common, "--compile", "never", "--precision", "bfloat16"])
    default = _run("ours", [*common, "--compile", "auto", "--auto-tiles"])
    vox = 1
    for s in shape:
        vox *= s
    rows = [
        f"### {label}: volume {'x'.join(map(str, shape))}, tiles "
        f"{'x'.join(map(str, tile))}, overlap {args.overlap}, batch {args.batch}, "
        f"{args.threads} threads",
        "",
        "| engine | time (s) | voxels/s | vs MONAI | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|",
        f"| MONAI sliding_window_inference (eager net) | {monai['seconds']:.1f} | "
        f"{monai['voxels_per_s']:.3g} | 1.00x | {monai['peak_rss_mib']:.0f} |",
        f"| predict, eager (channels-last, folded) | {eager['seconds']:.1f} | "
        f"{eager['voxels_per_s']:.3g} | {monai['seconds'] / eager['seconds']:.2f}x | "
        f"{eager['peak_rss_mib']:.0f} |",
        f"| predict, compiled (warm) | {comp['seconds']:.1f} | "
        f"{comp['voxels_per_s']:.3g} | {monai['seconds'] / comp['seconds']:.2f}x | "
        f"{comp['peak_rss_mib']:.0f} |",
        f"| predict, compiled (first call, incl. compile) | {comp['first_s']:.1f} | "
        f"{vox / comp['first_s']:.3g} | {monai['seconds'] / comp['first_s']:.2f}x | "
        f"{comp['peak_rss_mib']:.0f} |",
        f"| predict, use_compile='auto' (cold) | {auto['seconds']:.1f} | "
        f"{auto['voxels_per_s']:.3g} | {monai['seconds'] / auto['seconds']:.2f}x | "
        f"{auto['peak_rss_mib']:.0f} |",
        f"| predict, eager, bfloat16 convolutions | {bf16['seconds']:.1f} | "
        f"{bf16['voxels_per_s']:.3g} | {monai['seconds'] / bf16['seconds']:.2f}x | "
        f"{bf16['peak_rss_mib']:.0f} |",
        f"| predict, default config (automatic tiles {default['tile']}, "
        f"{default['precision']}, cold) | "
        f"{default['seconds']:.1f} | {default['voxels_per_s']:.3g} | "
        f"{monai['seconds'] / default['seconds']:.2f}x | {default['peak_rss_mib']:.0f} |",
        "",
        f"Network alone on a batch of {args.batch} tile(s) "
        f"({net['gflop_per_batch']:.1f} GFLOP): sgemm peak {peak:.0f} GFLOP/s.",
        "",
        "| network mode | GFLOP/s | % of sgemm peak |",
        "|---|---:|---:|",
    ]
    for k, name in (
        ("eager", "eager (contiguous)"),
        ("channels_last", "channels-last"),
        ("compiled", "channels-last + torch.compile"),
    ):
        g = net[f"{k}_gflops"]
        rows.append(f"| {name} | {g:.1f} | {100 * g / peak:.0f}% |")
    rows.append(
        f"\nCompile warm-up for this tile shape: {net['compile_warmup_s']:.1f} s.\n"
    )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=sorted(CASES))
    p.add_argument("--shape", type=int, nargs="+")
    p.add_argument("--tile", type=int, nargs="+")
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", default="never")
    p.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="InferenceConfig.precision of the 'ours' case (the suite sets it)",
    )
    p.add_argument("--auto-tiles", action="store_true", help="let predict choose tiles")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--only", choices=["2d", "3d"], help="run one of the two suites")
    p.add_argument("--markdown", help="also write the tables to this file")
    args = p.parse_args()
    if args.case:
        print(json.dumps(CASES[args.case](args)))
        return
    peak = _run("sgemm", ["--threads", str(args.threads)])["sgemm_gflops"]
    if args.quick:
        suites = [("3D", (32, 64, 64), (32, 32, 32)), ("2D", (256, 256), (128, 128))]
    else:
        suites = [
            ("3D", (128, 256, 256), (64, 64, 64)),
            ("2D", (2048, 2048), (512, 512)),
        ]
    if args.only:
        suites = [s for s in suites if s[0].lower() == args.only]
    import torch

    lines = [
        f"CPU threads: {args.threads}; torch {torch.__version__}; "
        f"measured sgemm peak {peak:.0f} GFLOP/s.",
        "",
    ]
    for label, shape, tile in suites:
        lines += _suite(label, shape, tile, args, peak)
        print("\n".join(lines), flush=True)
        print("-" * 40, flush=True)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
