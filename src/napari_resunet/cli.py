"""The ``napari-resunet`` command line: thin over :mod:`napari_resunet.core`.

Every user error (unreadable file, wrong shape, bad labels, NaN, constant image,
an existing output) ends in one clear ``error:`` line and a non-zero exit, never a
traceback. Set ``NAPARI_RESUNET_DEBUG=1`` to get the traceback anyway.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Sequence

EXAMPLES = """\
examples:
  napari-resunet demo                       # napari with a sample and the widgets
  napari-resunet sample nuclei2d -o demo
  napari-resunet train demo/nuclei2d_image.tif demo/nuclei2d_labels.tif \\
      --labels-are instances --steps 150 -o demo/nuclei2d.pt
  napari-resunet predict demo/nuclei2d_image.tif --model demo/nuclei2d.pt \\
      -o demo/nuclei2d_pred.tif
  napari-resunet info demo/nuclei2d.pt
  napari-resunet predict demo/nuclei2d_image.tif --model nuclei2d -o demo/cells.tif
  napari-resunet evaluate demo/cells.tif demo/nuclei2d_labels.tif
"""


def _ints(text: str) -> tuple[int, ...]:
    from napari_resunet.core.checks import parse_sizes

    try:
        return parse_sizes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 2,0.5,0.5; got {text!r}"
        ) from err
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return vals


def _build_parser() -> argparse.ArgumentParser:
    from napari_resunet import __version__
    from napari_resunet._commands import (
        _cmd_demo,
        _cmd_evaluate,
        _cmd_info,
        _cmd_predict,
        _cmd_sample,
        _cmd_train,
    )
    from napari_resunet.core.config import (
        InferenceConfig,
        InstanceConfig,
        ModelConfig,
        TrainConfig,
    )
    from napari_resunet.core.io import SAMPLES
    from napari_resunet.core.models.zoo import STARTER_MODELS

    mdef, idef, tdef = ModelConfig(), InferenceConfig(), TrainConfig()
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="napari-resunet",
        description="Segment 2D images and 3D volumes with residual U-Nets: train on "
        "labelled TIFFs, predict tiled over images of any size, inspect checkpoints.",
        epilog=EXAMPLES,
        formatter_class=fmt,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # predict
    sp = sub.add_parser(
        "predict",
        help="segment an image with a trained model",
        description="Run tiled prediction on IMAGE and write integer labels (or class "
        "probabilities) to OUT.",
        formatter_class=fmt,
    )
    sp.add_argument("image", help="input TIFF, (Y, X) or (Z, Y, X) [+ channel axis]")
    sp.add_argument(
        "--model",
        "-m",
        required=True,
        help="checkpoint file (.pt) or a starter model: " + ", ".join(STARTER_MODELS),
    )
    sp.add_argument("--output", "-o", required=True, help="output TIFF")
    sp.add_argument(
        "--probabilities",
        action="store_true",
        help="write float32 class probabilities (C, ...) instead of labels",
    )
    sp.add_argument(
        "--tile", type=_ints, help="tile shape, e.g. 64,128,128 (default: automatic)"
    )
    sp.add_argument(
        "--overlap",
        type=float,
        default=idef.overlap,
        help=f"tile overlap fraction (default {idef.overlap})",
    )
    sp.add_argument(
        "--batch-size",
        type=int,
        default=idef.batch_size,
        help=f"tiles per forward pass (default {idef.batch_size})",
    )
    sp.add_argument(
        "--compile",
        choices=["auto", "always", "never"],
        default=idef.use_compile,
        help="torch.compile the network (default auto: only for long jobs)",
    )
    sp.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default=idef.precision,
        help="convolution arithmetic (default auto: bfloat16 on CPUs that compute "
        "it natively, else float32)",
    )
    sp.add_argument(
        "--test-time-flips",
        type=int,
        default=idef.test_time_flips,
        metavar="N",
        help="average the prediction over N mirrorings of the image, up to 4 in 2D "
        "and 8 in 3D (N times slower; default 1: none)",
    )
    sp.add_argument(
        "--min-size",
        type=int,
        help="cell models: remove cells smaller than this many voxels (default: "
        f"the model's tuned value, else {InstanceConfig().min_size})",
    )
    sp.add_argument(
        "--seeds",
        choices=["interior", "distance"],
        help="cell models: seed cells from interiors or distance maxima (default: "
        "the model's tuned choice)",
    )
    sp.add_argument(
        "--seed-threshold",
        type=float,
        help="cell models: interior probability that makes a seed",
    )
    sp.add_argument(
        "--scale",
        type=_floats,
        help="voxel size z,y,x (default: from the TIFF metadata)",
    )
    _add_common(sp, idef.device)
    sp.set_defaults(func=_cmd_predict)

    # train
    st = sub.add_parser(
        "train",
        help="train (or fine-tune) a model on an image and its labels",
        description=textwrap.dedent(
            """\
            Train a residual U-Net on IMAGE with LABELS (0 = background) and save it
            to OUT. LABELS holds class ids 0..C-1, or one id per object with
            --labels-are instances (the network then learns cell interiors and
            boundaries and predicts one label per cell). MASK, if given, marks
            annotated voxels (non-zero); the rest are ignored."""
        ),
        formatter_class=fmt,
    )
    st.add_argument("image", help="input TIFF")
    st.add_argument(
        "labels", help="labels TIFF, same shape as IMAGE (without channels)"
    )
    st.add_argument(
        "--mask", help="TIFF marking annotated voxels (non-zero = annotated)"
    )
    st.add_argument("--output", "-o", required=True, help="checkpoint to write (.pt)")
    st.add_argument("--model", "-m", help="start from this checkpoint (fine-tune)")
    st.add_argument(
        "--labels-are",
        choices=["classes", "instances"],
        default="classes",
        help="how to read LABELS (default classes)",
    )
    st.add_argument(
        "--task",
        choices=["semantic", "instance"],
        help="what the new network predicts: one label per cell (instance; "
        "default with --labels-are instances) or class ids (semantic; with "
        "instance labels it learns foreground vs background)",
    )
    st.add_argument(
        "--classes",
        type=int,
        help="number of classes incl. background (default: from the labels)",
    )
    st.add_argument(
        "--dims",
        type=int,
        choices=[2, 3],
        help="2D or 3D network (default: the image's; 2 on a stack = per slice)",
    )
    st.add_argument(
        "--features",
        type=_ints,
        default=mdef.features,
        help=f"channels per level (default {','.join(map(str, mdef.features))})",
    )
    st.add_argument(
        "--norm",
        choices=["group", "instance", "batch", "none"],
        default=mdef.norm,
        help=f"normalisation layer (default {mdef.norm})",
    )
    st.add_argument(
        "--dropout", type=float, default=mdef.dropout, help="dropout probability"
    )
    st.add_argument(
        "--steps",
        type=int,
        default=tdef.steps,
        help=f"optimiser steps (default {tdef.steps})",
    )
    st.add_argument(
        "--patch",
        type=_ints,
        help="patch shape such as 256x256, or one size for a square / cube "
        "(default 256x256 / 64x64x64)",
    )
    st.add_argument(
        "--batch-size",
        type=int,
        default=tdef.batch_size,
        help=f"patches per step (default {tdef.batch_size})",
    )
    st.add_argument(
        "--lr", type=float, default=tdef.lr, help=f"learning rate (default {tdef.lr})"
    )
    st.add_argument("--elastic", action="store_true", help="add elastic deformation")
    st.add_argument("--val-image", help="validation image TIFF")
    st.add_argument("--val-labels", help="validation labels TIFF")
    st.add_argument("--seed", type=int, default=tdef.seed, help="random seed")
    _add_common(st, tdef.device)
    st.set_defaults(func=_cmd_train)

    si = sub.add_parser(
        "info",
        help="describe a checkpoint",
        description="Print a checkpoint's architecture, normalisation "
        "and training summary.",
    )
    si.add_argument("checkpoint")
    si.set_defaults(func=_cmd_info)

    ss = sub.add_parser(
        "sample",
        help="write a shipped sample image and its labels",
        description="Write a shipped sample (image + ground-truth labels) as TIFFs.\n\n"
        + "\n".join(f"  {k}: {v}" for k, v in SAMPLES.items()),
        formatter_class=fmt,
    )
    ss.add_argument("name", choices=sorted(SAMPLES))
    ss.add_argument("--output", "-o", default=".", help="folder to write into")
    ss.add_argument("--overwrite", action="store_true", help="replace existing files")
    ss.set_defaults(func=_cmd_sample)

    se = sub.add_parser(
        "evaluate",
        help="compare a segmentation with ground truth",
        description="Print Dice/IoU per class, instance matching (precision, recall, "
        "F1, AP at IoU 0.5-0.9), HD95 and, for 3D instance labels, adapted Rand error "
        "and variation of information.",
    )
    se.add_argument("prediction", help="predicted labels TIFF")
    se.add_argument("ground_truth", help="ground-truth labels TIFF")
    se.add_argument(
        "--mode",
        choices=["auto", "semantic", "instance"],
        default="auto",
        help="class ids or one id per object (default: instance if any id > 2)",
    )
    se.add_argument(
        "--scale",
        type=_floats,
        help="voxel size z,y,x for HD95 (default: from the TIFF metadata)",
    )
    se.add_argument("--json", action="store_true", help="print JSON instead of a table")
    se.set_defaults(func=_cmd_evaluate)

    sd = sub.add_parser(
        "demo",
        help="open napari with a sample and the plugin's widgets",
        description="Open napari with a shipped sample loaded and the Segment and "
        "Fine-tune widgets docked (needs napari with a Qt binding).",
    )
    sd.add_argument("--sample", choices=sorted(SAMPLES), default="nuclei2d")
    sd.set_defaults(func=_cmd_demo)
    return p


def _add_common(sp: argparse.ArgumentParser, device: str) -> None:
    sp.add_argument(
        "--channel-axis",
        type=int,
        help="index of the image's channel axis (multi-channel input)",
    )
    sp.add_argument(
        "--device", default=device, help="auto, cpu, cuda, cuda:1 or mps (default auto)"
    )
    sp.add_argument(
        "--overwrite", action="store_true", help="replace an existing output"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-resunet`` command; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from napari_resunet.core.models.checkpoint import CheckpointError

    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    except (ValueError, OSError, CheckpointError, FloatingPointError) as err:
        if os.environ.get("NAPARI_RESUNET_DEBUG"):
            raise
        print(f"napari-resunet {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
