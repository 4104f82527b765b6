"""Implementations of the ``napari-resunet`` commands (parsing lives in ``cli``).

Each takes the parsed arguments, calls the core and prints a short summary; user
errors are raised as ``ValueError``/``OSError`` and reported by ``cli.main``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


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
        tile_shape=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        use_compile=args.compile,
        precision=args.precision,
        test_time_flips=args.test_time_flips,
    )
    probs = predict(
        model, img.data, cfg, args.channel_axis, voxel_size, show_progress=True
    )
    spatial_axes = "ZYX"[-(probs.ndim - 1) :]
    if args.probabilities:
        write_tiff(args.output, probs, "C" + spatial_axes, voxel_size, args.overwrite)
        print(f"wrote {args.output} {probs.shape} float32 probabilities")
        return
    overrides = {
        k: v
        for k, v in (
            ("min_size", args.min_size),
            ("seeds", args.seeds),
            ("seed_threshold", args.seed_threshold),
        )
        if v is not None
    }
    icfg = (model.instance_config or InstanceConfig()).replace(**overrides)
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
            raise ValueError(
                "--task instance needs instance labels (--labels-are instances)."
            )
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
                raise ValueError(
                    f"Labels must hold integers, got dtype {labels.dtype}."
                )
            n_classes = max(2, int(labels.max()) + 1)
            if n_classes > 32:
                raise ValueError(
                    f"The labels hold ids up to {n_classes - 1}: these look like instance "
                    f"labels. Pass --labels-are instances, or --classes N for a semantic "
                    f"model with N classes."
                )
        spatial_ndim = img.data.ndim - (args.channel_axis is not None)
        dims = args.dims or (3 if spatial_ndim == 3 else 2)
        in_channels = (
            1 if args.channel_axis is None else img.data.shape[args.channel_axis]
        )
        model = build_model(
            ModelConfig(
                spatial_dims=dims,
                in_channels=in_channels,
                out_channels=n_classes,
                features=args.features,
                norm=args.norm,
                dropout=args.dropout,
                task=task,
            ),
            seed=args.seed,
        )
    patch = args.patch
    if patch is not None and len(patch) == 1:  # one size: a square / cube
        # (on a stack, the patch sampler gives a 2D network single-slice patches)
        patch = patch * model.spatial_dims
    cfg = TrainConfig(
        patch_shape=patch,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        label_mode=label_mode,
        augment_elastic=args.elastic,
        seed=args.seed,
        device=args.device,
    )
    data = TrainData(img.data, labels, mask, args.channel_axis)
    val = None
    if bool(args.val_image) != bool(args.val_labels):
        raise ValueError("Give both --val-image and --val-labels, or neither.")
    if args.val_image:
        val = TrainData(
            read_image(args.val_image).data,
            read_image(args.val_labels).data,
            None,
            args.channel_axis,
        )
    result = train(model, data, cfg, val, show_progress=True)
    meta = result.metadata()
    meta["data"] = {
        "image": str(args.image),
        "labels": str(args.labels),
        "mask": str(args.mask) if args.mask else None,
        "label_mode": label_mode,
    }
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
    print(
        f"network:        {mc.spatial_dims}D ResUNet, features {list(mc.features)}, "
        f"norm {mc.norm}, dropout {mc.dropout}"
    )
    print(f"channels:       {mc.in_channels} in -> {mc.out_channels} classes")
    print(
        "output:         "
        + (
            "one label per cell (interior/boundary + watershed)"
            if mc.task == "instance"
            else "class ids"
        )
    )
    print(f"parameters:     {n_params:,}")
    print(f"size rule:      spatial sizes multiple of {mc.size_multiple} (tiling pads)")
    n = ckpt.normalization
    print(
        f"normalisation:  percentiles {n.low}-{n.high}"
        f"{', per channel' if n.per_channel else ''}{', equalised' if n.equalize else ''}"
    )
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
