"""The command line, run as users run it (a subprocess for the end-to-end path)."""

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from tests.conftest import tiny_model

from napari_resunet.cli import main
from napari_resunet.core import (
    InferenceConfig,
    load_checkpoint,
    predict,
    read_checkpoint,
    save_checkpoint,
)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "napari_resunet.cli", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_help_reads_well():
    res = _cli("--help")
    assert res.returncode == 0
    for word in ("predict", "train", "info", "sample", "examples:"):
        assert word in res.stdout
    res = _cli("train", "--help")
    assert "--labels-are" in res.stdout and "--mask" in res.stdout


def test_a_mistyped_size_names_what_is_understood(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "in.tif", "-m", "m.pt", "-o", "o.tif", "--tile", "big"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--tile" in err and "such as 64,128,128" in err and "'big'" in err


def test_sample_train_predict_info_end_to_end(tmp_path):
    res = _cli("sample", "nuclei2d", "-o", tmp_path)
    assert res.returncode == 0, res.stderr
    img = tmp_path / "nuclei2d_image.tif"
    lab = tmp_path / "nuclei2d_labels.tif"
    ckpt = tmp_path / "m.pt"
    res = _cli(
        "train",
        img,
        lab,
        "--labels-are",
        "instances",
        "--steps",
        "20",
        "--features",
        "8,16,32",
        "--patch",
        "96,96",
        "-o",
        ckpt,
        "--device",
        "cpu",
    )
    assert res.returncode == 0, res.stderr
    assert "saved" in res.stdout
    info = _cli("info", ckpt)
    assert (
        info.returncode == 0
        and "2D ResUNet" in info.stdout
        and "20 steps" in info.stdout
    )
    assert "one label per cell" in info.stdout
    out = tmp_path / "pred.tif"
    res = _cli("predict", img, "--model", ckpt, "-o", out)
    assert res.returncode == 0, res.stderr
    pred = tifffile.imread(out)
    assert pred.shape == (520, 696) and pred.dtype == np.uint32
    assert "cells" in res.stdout
    res = _cli("evaluate", out, lab)
    assert res.returncode == 0, res.stderr
    assert "f1@0.50" in res.stdout and "n_true" in res.stdout
    # refusing to overwrite is a clear error, not a traceback
    res = _cli("predict", img, "--model", ckpt, "-o", out)
    assert (
        res.returncode == 1
        and "--overwrite" in res.stderr
        and "Traceback" not in res.stderr
    )
    probs, probs32 = tmp_path / "probs.tif", tmp_path / "probs32.tif"
    for path, precision in ((probs, "bfloat16"), (probs32, "float32")):
        args = ("-o", path, "--probabilities", "--precision", precision)
        assert _cli("predict", img, "-m", ckpt, *args).returncode == 0
    p16, p32 = tifffile.imread(probs), tifffile.imread(probs32)
    assert p16.shape == (3, 520, 696) and p16.dtype == np.float32
    assert 0 < np.abs(p16 - p32).max() < 0.05  # the option reaches the network
    flipped = tmp_path / "probs_tta.tif"
    args = ("-o", flipped, "--probabilities", "--precision", "float32")
    res = _cli("predict", img, "-m", ckpt, *args, "--test-time-flips", "4")
    assert res.returncode == 0, res.stderr
    cfg = InferenceConfig(precision="float32", test_time_flips=4)
    expected = predict(load_checkpoint(ckpt)[0], tifffile.imread(img), cfg)
    np.testing.assert_allclose(tifffile.imread(flipped), expected, atol=1e-6)
    assert np.abs(expected - p32).max() > 1e-4


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    ckpt = save_checkpoint(tmp_path / "m2d.pt", tiny_model(2))
    good = rng.integers(0, 1000, (64, 64)).astype(np.uint16)
    paths = {"ckpt": ckpt, "dir": tmp_path}

    def put(name, arr):
        p = tmp_path / name
        tifffile.imwrite(p, arr)
        paths[name] = p
        return p

    put("good.tif", good)
    put("labels.tif", (good > 500).astype(np.uint8))
    put("labels_small.tif", np.zeros((32, 32), np.uint8))
    put("rgb.tif", rng.integers(0, 255, (64, 64, 3)).astype(np.uint8))
    put("4d.tif", rng.random((2, 3, 16, 16)).astype(np.float32))
    put("nan.tif", np.where(rng.random((64, 64)) > 0.5, np.nan, 1.0).astype(np.float32))
    put("const.tif", np.full((64, 64), 5, np.uint16))
    put("float_labels.tif", (good > 500).astype(np.float32))
    put("instances.tif", (good // 10).astype(np.uint16))
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    paths["broken.tif"] = tmp_path / "broken.tif"
    return paths


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "rgb.tif", "-m", "ckpt", "-o", "o.tif"], "looks like RGB"),
        (["predict", "4d.tif", "-m", "ckpt", "-o", "o.tif"], "needs a"),
        (["predict", "nan.tif", "-m", "ckpt", "-o", "o.tif"], "NaN"),
        (["predict", "const.tif", "-m", "ckpt", "-o", "o.tif"], "constant"),
        (["predict", "broken.tif", "-m", "ckpt", "-o", "o.tif"], "Cannot read"),
        (["predict", "missing.tif", "-m", "ckpt", "-o", "o.tif"], "not found"),
        (
            ["predict", "good.tif", "-m", "good.tif", "-o", "o.tif"],
            "not a readable checkpoint",
        ),
        (
            ["train", "good.tif", "labels_small.tif", "-o", "n.pt"],
            "differs from the image",
        ),
        (["train", "good.tif", "float_labels.tif", "-o", "n.pt"], "integers"),
        (
            ["train", "good.tif", "instances.tif", "-o", "n.pt"],
            "--labels-are instances",
        ),
        (["train", "const.tif", "labels.tif", "-o", "n.pt"], "constant"),
        (["train", "rgb.tif", "labels.tif", "-o", "n.pt"], "looks like RGB"),
        (
            [
                "train",
                "good.tif",
                "labels.tif",
                "-o",
                "n.pt",
                "--patch",
                "30,30",
                "--steps",
                "1",
            ],
            "multiples of 8",
        ),
        (["info", "good.tif"], "not a readable checkpoint"),
    ],
)
def test_bad_input_gives_one_clear_message(files, capsys, argv, message):
    args = []
    for a in argv:
        if a == "ckpt":
            args.append(str(files["ckpt"]))
        elif a in files:
            args.append(str(files[a]))
        elif a.endswith((".tif", ".pt")):
            args.append(str(files["dir"] / a))
        else:
            args.append(a)
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1
    assert message in err, err
    assert err.count("\n") == 1 and err.startswith("napari-resunet ")
    assert (
        not (files["dir"] / "o.tif").exists() and not (files["dir"] / "n.pt").exists()
    )


def test_train_with_mask_and_fine_tune_from_checkpoint(files, capsys):
    mask = files["dir"] / "mask.tif"
    m = np.zeros((64, 64), np.uint8)
    m[:16] = 1
    tifffile.imwrite(mask, m)
    out = files["dir"] / "ft.pt"
    code = main(
        [
            "train",
            str(files["good.tif"]),
            str(files["labels.tif"]),
            "--mask",
            str(mask),
            "--model",
            str(files["ckpt"]),
            "--steps",
            "3",
            "--patch",
            "32,32",
            "-o",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    ckpt = read_checkpoint(out)
    assert ckpt.model_config.features == (4, 8, 16)  # kept the starting architecture
    assert ckpt.training["data"]["mask"] == str(mask)


def test_evaluate_command(files, capsys):
    import json

    truth = np.zeros((32, 32), np.uint16)
    truth[2:10, 2:10] = 1
    truth[12:20, 12:20] = 2
    truth[22:30, 2:10] = 3
    pred = truth.copy()
    pred[pred == 3] = 0
    d = files["dir"]
    tifffile.imwrite(d / "t.tif", truth)
    tifffile.imwrite(d / "p.tif", pred)
    assert main(["evaluate", str(d / "p.tif"), str(d / "t.tif")]) == 0
    out = capsys.readouterr().out
    assert "recall@0.50" in out and "0.6667" in out
    assert (
        main(
            ["evaluate", str(d / "p.tif"), str(d / "t.tif"), "--json", "--scale", "2,1"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "instance" and data["summary"]["n_true"] == 3
    assert main(["evaluate", str(d / "p.tif"), str(files["labels.tif"])]) == 1
    assert "shape" in capsys.readouterr().err
    assert (
        main(["evaluate", str(files["float_labels.tif"]), str(files["labels.tif"])])
        == 1
    )
    assert "integer" in capsys.readouterr().err


def test_one_patch_size_means_a_square(files, capsys):
    out = files["dir"] / "sq.pt"
    argv = ["train", str(files["good.tif"]), str(files["labels.tif"])]
    argv += ["--steps", "1", "--patch", "32", "--features", "4,8", "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert list(read_checkpoint(out).training["train_config"]["patch_shape"]) == [
        32,
        32,
    ]


def test_train_semantic_from_instance_labels(files, capsys):
    out = files["dir"] / "fg.pt"
    code = main(
        [
            "train",
            str(files["good.tif"]),
            str(files["instances.tif"]),
            "--labels-are",
            "instances",
            "--task",
            "semantic",
            "--steps",
            "2",
            "--patch",
            "32,32",
            "--features",
            "4,8",
            "-o",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    ckpt = read_checkpoint(out)
    assert ckpt.model_config.task == "semantic" and ckpt.model_config.out_channels == 2
    assert (
        main(
            [
                "train",
                str(files["good.tif"]),
                str(files["labels.tif"]),
                "--task",
                "instance",
                "-o",
                str(files["dir"] / "x.pt"),
            ]
        )
        == 1
    )
    assert "--labels-are instances" in capsys.readouterr().err


def test_predict_with_a_starter_model_and_overrides(files, capsys):
    from napari_resunet.core.io import load_sample

    image, _ = load_sample("nuclei2d")
    d = files["dir"]
    tifffile.imwrite(d / "crop.tif", image.data[:128, :128])
    out = d / "cells.tif"
    assert main(["predict", str(d / "crop.tif"), "-m", "nuclei2d", "-o", str(out)]) == 0
    assert "cells" in capsys.readouterr().out
    tuned = tifffile.imread(out)
    assert tuned.dtype == np.uint32 and tuned.max() > 3
    big = d / "big_only.tif"
    assert (
        main(
            [
                "predict",
                str(d / "crop.tif"),
                "-m",
                "nuclei2d",
                "-o",
                str(big),
                "--min-size",
                "100000",
            ]
        )
        == 0
    )
    assert tifffile.imread(big).max() == 0  # the override removed every cell
    assert (
        main(
            [
                "predict",
                str(d / "crop.tif"),
                "-m",
                "nosuchmodel",
                "-o",
                str(d / "x.tif"),
            ]
        )
        == 1
    )
    assert "not found" in capsys.readouterr().err
