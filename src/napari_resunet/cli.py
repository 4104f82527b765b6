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
from pathlib import Path

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
    try:
        vals = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 64,64,64; got {text!r}"
        ) from err
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


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
    sp.add_argument("--model", "-m", required=True,
                    help="checkpoint file (.pt) or a starter model: " + ", ".join(STARTER_MODELS))
    sp.add_argument("--output", "-o", required=True, help="output TIFF")
    sp.add_argument(
        "--probabilities", action="store_true",
        help="write float32 class probabilities (C, ...) instead of labels",
    )
    sp.add_argument("--tile", type=_ints, help="tile shape, e.g. 64,128,128 (default: automatic)")
    sp.add_argument("--overlap", type=float, default=idef.overlap,
                    help=f"tile overlap fraction (default {idef.overlap})")
    sp.add_argument("--batch-size", type=int, default=idef.batch_size,
                    help=f"tiles per forward pass (default {idef.batch_size})")
    sp.add_argument("--compile", choices=["auto", "always", "never"], default=idef.use_compile,
                    help="torch.compile the network (default auto: only for long jobs)")
    sp.add_argument("--min-size", type=int, default=InstanceConfig().min_size,
                    help="cell models: remove cells smaller than this (voxels)")
    sp.add_argument("--seeds", choices=["interior", "distance"], default=InstanceConfig().seeds,
                    help="cell models: seed cells from interiors or distance maxima")
    sp.add_argument("--scale", type=_floats,
                    help="voxel size z,y,x (default: from the TIFF metadata)")
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
    st.add_argument("labels", help="labels TIFF, same shape as IMAGE (without channels)")
    st.add_argument("--mask", help="TIFF marking annotated voxels (non-zero = annotated)")
    st.add_argument("--output", "-o", required=True, help="checkpoint to write (.pt)")
    st.add_argument("--model", "-m", help="start from this checkpoint (fine-tune)")
    st.add_argument("--labels-are", choices=["classes", "instances"], default="classes",
                    help="how to read LABELS (default classes)")
    st.add_argument("--task", choices=["semantic", "instance"],
                    help="what the new network predicts: one label per cell (instance; "
                    "default with --labels-are instances) or class ids (semantic; with "
                    "instance labels it learns foreground vs background)")
    st.add_argument("--classes", type=int,
                    help="number of classes incl. background (default: from the labels)")
    st.add_argument("--dims", type=int, choices=[2, 3],
                    help="2D or 3D network (default: the image's; 2 on a stack = per slice)")
    st.add_argument("--features", type=_ints, default=mdef.features,
                    help=f"channels per level (default {','.join(map(str, mdef.features))})")
    st.add_argument("--norm", choices=["group", "instance", "batch", "none"],
                    default=mdef.norm, help=f"normalisation layer (default {mdef.norm})")
    st.add_argument("--dropout", type=float, default=mdef.dropout, help="dropout probability")
    st.add_argument("--steps", type=int, default=tdef.steps,
                    help=f"optimiser steps (default {tdef.steps})")
    st.add_argument("--patch", type=_ints, help="patch shape (default 256x256 / 64x64x64)")
    st.add_argument("--batch-size", type=int, default=tdef.batch_size,
                    help=f"patches per step (default {tdef.batch_size})")
    st.add_argument("--lr", type=float, default=tdef.lr, help=f"learning rate (default {tdef.lr})")
    st.add_argument("--elastic", action="store_true", help="add elastic deformation")
    st.add_argument("--val-image", help="validation image TIFF")
    st.add_argument("--val-labels", help="validation labels TIFF")
    st.add_argument("--seed", type=int, default=tdef.seed, help="random seed")
    _add_common(st, tdef.device)
    st.set_defaults(func=_cmd_train)

    si = sub.add_parser("info", help="describe a checkpoint",
                        description="Print a checkpoint's architecture, normalisation "
                        "and training summary.")
    si.add_argument("checkpoint")
    si.set_defaults(func=_cmd_info)

    ss = sub.add_parser(
        "sample", help="write a shipped sample image and its labels",
        description="Write a shipped sample (image + ground-truth labels) as TIFFs.\n\n"
        + "\n".join(f"  {k}: {v}" for k, v in SAMPLES.items()),
        formatter_class=fmt,
    )
    ss.add_argument("name", choices=sorted(SAMPLES))
    ss.add_argument("--output", "-o", default=".", help="folder to write into")
    ss.add_argument("--overwrite", action="store_true", help="replace existing files")
    ss.set_defaults(func=_cmd_sample)

    se = sub.add_parser(
        "evaluate", help="compare a segmentation with ground truth",
        description="Print Dice/IoU per class, instance matching (precision, recall, "
        "F1, AP at IoU 0.5-0.9), HD95 and, for 3D instance labels, adapted Rand error "
        "and variation of information.",
    )
    se.add_argument("prediction", help="predicted labels TIFF")
    se.add_argument("ground_truth", help="ground-truth labels TIFF")
    se.add_argument("--mode", choices=["auto", "semantic", "instance"], default="auto",
                    help="class ids or one id per object (default: instance if any id > 2)")
    se.add_argument("--scale", type=_floats,
                    help="voxel size z,y,x for HD95 (default: from the TIFF metadata)")
    se.add_argument("--json", action="store_true", help="print JSON instead of a table")
    se.set_defaults(func=_cmd_evaluate)

    sd = sub.add_parser(
        "demo", help="open napari with a sample and the plugin's widgets",
        description="Open napari with a shipped sample loaded and the Segment and "
        "Fine-tune widgets docked (needs napari with a Qt binding).",
    )
    sd.add_argument("--sample", choices=sorted(SAMPLES), default="nuclei2d")
    sd.set_defaults(func=_cmd_demo)
    return p


def _add_common(sp: argparse.ArgumentParser, device: str) -> None:
    sp.add_argument("--channel-axis", type=int,
                    help="index of the image's channel axis (multi-channel input)")
    sp.add_argument("--device", default=device,
                    help="auto, cpu, cuda, cuda:1 or mps (default auto)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing output")


def _refuse_existing(path: str, overwrite: bool) -> None:
    if Path(path).exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it.")


def _cmd_predict(args: argparse.Namespace) -> None:
    import numpy as np

    from napari_resunet.core import InferenceConfig, predict
    from napari_resunet.core.config import InstanceConfig
    from napari_resunet.core.inference.postprocess import labels_from_probabilities
    from napari_resunet.core.io import read_image, write_tiff
    from napari_resunet.core.models.zoo import load_model

    _refuse_existing(args.output, args.overwrite)
    model, _ = load_model(args.model)
    img = read_image(args.image)
    voxel_size = args.scale or img.voxel_size
    cfg = InferenceConfig(
        tile_shape=args.tile, overlap=args.overlap, batch_size=args.batch_size,
        device=args.device, use_compile=args.compile,
    )
    probs = predict(model, img.data, cfg, args.channel_axis, voxel_size, show_progress=True)
    spatial_axes = "ZYX"[-(probs.ndim - 1):]
    if args.probabilities:
        write_tiff(args.output, probs, "C" + spatial_axes, voxel_size, args.overwrite)
        print(f"wrote {args.output} {probs.shape} float32 probabilities")
        return
    icfg = InstanceConfig(min_size=args.min_size, seeds=args.seeds)
    labels = labels_from_probabilities(probs, model.config, icfg, voxel_size)
    write_tiff(args.output, labels, spatial_axes, voxel_size, args.overwrite)
    if model.config.task == "instance":
        print(f"wrote {args.output} {labels.shape}: {int(labels.max())} cells")
    else:
        counts = ", ".join(
            f"class {c}: {100 * n / labels.size:.1f}%"
            for c, n in enumerate(np.bincount(labels.ravel(), minlength=probs.shape[0]))
        )
        print(f"wrote {args.output} {labels.shape} ({counts})")


def _cmd_train(args: argparse.Namespace) -> None:
    import numpy as np

    from napari_resunet.core import (
        ModelConfig,
        TrainConfig,
        TrainData,
        build_model,
        save_checkpoint,
        train,
    )
    from napari_resunet.core.io import read_image
    from napari_resunet.core.models.zoo import load_model

    _refuse_existing(args.output, args.overwrite)
    img = read_image(args.image)
    labels = read_image(args.labels).data
    mask = read_image(args.mask).data != 0 if args.mask else None
    task = args.task or ("instance" if args.labels_are == "instances" else "semantic")
    if args.labels_are == "classes":
        if task == "instance":
            raise ValueError("--task instance needs instance labels (--labels-are instances).")
        label_mode = "classes"
    else:
        label_mode = "instances" if task == "instance" else "foreground"
    if args.model:
        model, ckpt = load_model(args.model)
        if model.config.task == "instance":
            label_mode = "instances"
        if args.classes and args.classes != model.config.out_channels:
            raise ValueError(
                f"--classes {args.classes} differs from the starting model's "
                f"{model.config.out_channels} classes."
            )
    else:
        if task == "instance":
            n_classes = 3
        elif args.classes:
            n_classes = args.classes
        elif label_mode == "foreground":
            n_classes = 2
        else:
            if labels.dtype.kind not in "uib":
                raise ValueError(f"Labels must hold integers, got dtype {labels.dtype}.")
            n_classes = max(2, int(labels.max()) + 1)
            if n_classes > 32:
                raise ValueError(
                    f"The labels hold ids up to {n_classes - 1}: these look like instance "
                    f"labels. Pass --labels-are instances, or --classes N for a semantic "
                    f"model with N classes."
                )
        spatial_ndim = img.data.ndim - (args.channel_axis is not None)
        dims = args.dims or (3 if spatial_ndim == 3 else 2)
        in_channels = 1 if args.channel_axis is None else img.data.shape[args.channel_axis]
        model = build_model(
            ModelConfig(
                spatial_dims=dims, in_channels=in_channels, out_channels=n_classes,
                features=args.features, norm=args.norm, dropout=args.dropout, task=task,
            ),
            seed=args.seed,
        )
    cfg = TrainConfig(
        patch_shape=args.patch, batch_size=args.batch_size, steps=args.steps, lr=args.lr,
        label_mode=label_mode, augment_elastic=args.elastic, seed=args.seed,
        device=args.device,
    )
    data = TrainData(img.data, labels, mask, args.channel_axis)
    val = None
    if bool(args.val_image) != bool(args.val_labels):
        raise ValueError("Give both --val-image and --val-labels, or neither.")
    if args.val_image:
        val = TrainData(
            read_image(args.val_image).data, read_image(args.val_labels).data,
            None, args.channel_axis,
        )
    result = train(model, data, cfg, val, show_progress=True)
    meta = result.metadata()
    meta["data"] = {"image": str(args.image), "labels": str(args.labels),
                    "mask": str(args.mask) if args.mask else None,
                    "label_mode": label_mode}
    save_checkpoint(args.output, result.model, meta)
    losses = np.asarray(result.history["loss"])
    k = max(1, len(losses) // 10)
    msg = f"loss {losses[:k].mean():.4f} -> {losses[-k:].mean():.4f}"
    if result.history["val_dice"]:
        msg += f", validation Dice {result.history['val_dice'][-1]:.3f}"
    print(f"saved {args.output} ({msg})")


def _cmd_info(args: argparse.Namespace) -> None:
    from napari_resunet.core import read_checkpoint

    ckpt = read_checkpoint(args.checkpoint)
    mc = ckpt.model_config
    n_params = sum(int(t.numel()) for t in ckpt.state_dict.values())
    print(f"checkpoint:     {args.checkpoint}")
    print(f"written by:     napari-resunet {ckpt.package_version}")
    print(f"network:        {mc.spatial_dims}D ResUNet, features {list(mc.features)}, "
          f"norm {mc.norm}, dropout {mc.dropout}")
    print(f"channels:       {mc.in_channels} in -> {mc.out_channels} classes")
    print("output:         " + ("one label per cell (interior/boundary + watershed)"
                                if mc.task == "instance" else "class ids"))
    print(f"parameters:     {n_params:,}")
    print(f"size rule:      spatial sizes multiple of {mc.size_multiple} (tiling pads)")
    n = ckpt.normalization
    print(f"normalisation:  percentiles {n.low}-{n.high}"
          f"{', per channel' if n.per_channel else ''}{', equalised' if n.equalize else ''}")
    hist = ckpt.training.get("history") or {}
    if hist.get("loss"):
        losses = hist["loss"]
        print(f"training:       {len(losses)} steps, final loss {losses[-1]:.4f}")
    if hist.get("val_dice"):
        print(f"validation:     Dice {hist['val_dice'][-1]:.3f}")
    data = ckpt.training.get("data")
    if data:
        print(f"trained on:     {data.get('image')} / {data.get('labels')}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import json

    from napari_resunet.core.io import read_image
    from napari_resunet.core.metrics import evaluate, metrics_table

    pred = read_image(args.prediction)
    truth = read_image(args.ground_truth)
    voxel_size = args.scale or truth.voxel_size or pred.voxel_size
    if voxel_size is not None and len(voxel_size) < truth.data.ndim:
        raise ValueError(
            f"--scale gives {len(voxel_size)} sizes for {truth.data.ndim}D labels."
        )
    result = evaluate(pred.data, truth.data, args.mode, voxel_size)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
        return
    rows = metrics_table(result)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def _cmd_sample(args: argparse.Namespace) -> None:
    from napari_resunet.core.io import load_sample, write_tiff

    image, labels = load_sample(args.name)
    out = Path(args.output)
    for kind, f in (("image", image), ("labels", labels)):
        path = out / f"{args.name}_{kind}.tif"
        write_tiff(path, f.data, f.axes, f.voxel_size, args.overwrite)
        print(f"wrote {path} {f.data.shape} {f.data.dtype}")


def _cmd_demo(args: argparse.Namespace) -> None:
    try:
        import napari
    except ImportError as err:  # pragma: no cover - napari is a dependency
        raise OSError(f"napari is not importable: {err}") from err
    viewer = napari.Viewer(title="napari-resunet demo")
    viewer.open_sample("napari-resunet", args.sample)
    viewer.window.add_plugin_dock_widget("napari-resunet", "Segment")
    viewer.window.add_plugin_dock_widget("napari-resunet", "Fine-tune")
    napari.run()


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
