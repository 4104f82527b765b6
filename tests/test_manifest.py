"""The npe2 manifest validates, its python_names resolve, samples have the right shape."""

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

npe2 = pytest.importorskip("npe2")

ROOT = Path(__file__).resolve().parents[1]


def _manifest():
    return npe2.PluginManifest.from_distribution("napari-resunet")


def test_validate_with_imports():
    res = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-resunet", "--imports"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout


def test_top_level_manifest_is_the_packaged_one():
    top = ROOT / "napari.yaml"
    assert top.is_symlink()
    assert top.resolve() == (ROOT / "src" / "napari_resunet" / "napari.yaml").resolve()


def test_every_python_name_resolves():
    for cmd in _manifest().contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), cmd.id


@pytest.mark.parametrize(
    ("key", "shape", "scale"),
    [("nuclei2d", (520, 696), None), ("nuclei3d", (51, 120, 122), [1.75, 0.8, 0.8])],
)
def test_sample_data(key, shape, scale):
    contrib = next(s for s in _manifest().contributions.sample_data if s.key == key)
    cmd = next(c for c in _manifest().contributions.commands if c.id == contrib.command)
    module, _, attr = cmd.python_name.partition(":")
    layers = getattr(importlib.import_module(module), attr)()
    kinds = [layer_type for _, _, layer_type in layers]
    assert kinds == ["image", "labels"]
    for data, meta, _ in layers:
        assert data.shape == shape
        got = meta.get("scale")
        assert (list(got) if got is not None else None) == scale
    labels = layers[1][0]
    assert labels.dtype.kind == "u" and labels.max() > 0
    assert np.unique(labels).size - 1 == labels.max()  # instance ids 1..N


def test_widgets_are_contributed():
    names = {w.display_name for w in _manifest().contributions.widgets}
    assert names == {
        "Segment",
        "Fine-tune",
        "Evaluate",
        "Annotation queue",
        "Model versions",
    }
