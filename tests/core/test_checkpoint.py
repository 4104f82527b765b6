import os
import pickle

import pytest
import torch
from tests.conftest import tiny_model

from napari_resunet.core import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from napari_resunet.core.config import NormalizationConfig


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_preserves_everything(tmp_path):
    model = tiny_model(3, out_channels=3, norm="instance")
    # a scheme other than the default, so that its round trip is tested
    model.normalization = NormalizationConfig(low=2.0, anchor="foreground")
    path = save_checkpoint(
        tmp_path / "sub" / "m.pt", model, {"note": "hello", "shape": (1, 2)}
    )
    loaded, ckpt = load_checkpoint(path)
    assert loaded.config == model.config
    assert loaded.normalization == model.normalization
    assert not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert ckpt.training == {"note": "hello", "shape": [1, 2]}
    assert ckpt.package_version
    assert not list(tmp_path.glob("sub/.*tmp"))  # no temp files left behind


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-resunet-checkpoint", "payload": evil}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_file_is_refused(tmp_path):
    path = tmp_path / "plain.pt"
    marker = tmp_path / "pwned2"
    evil = _Evil()
    evil.marker = marker
    path.write_bytes(pickle.dumps(evil))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_foreign_torch_file(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": tiny_model(2).state_dict()}, path)
    with pytest.raises(CheckpointError, match="not a napari-resunet checkpoint"):
        load_checkpoint(path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)


def test_truncated_file(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_tampered_weights_are_detected(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(2))
    raw = torch.load(path, weights_only=True)
    key = next(iter(raw["state_dict"]))
    raw["state_dict"][key] = raw["state_dict"][key] + 1.0
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(path)


def test_bit_flip_inside_the_archive_is_detected(tmp_path):
    model = tiny_model(2)
    path = save_checkpoint(tmp_path / "m.pt", model)
    weights = model.state_dict()["head.weight"].numpy().tobytes()
    data = bytearray(path.read_bytes())
    offset = data.find(weights)
    assert offset > 0
    data[offset + 1] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_newer_format_version(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(2))
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="Upgrade"):
        load_checkpoint(path)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model(2))
    good = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny_model(2, features=(8, 16)))
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_half_precision_storage_loads_as_float32(tmp_path):
    model = tiny_model(2)
    full = save_checkpoint(tmp_path / "f.pt", model)
    half = save_checkpoint(tmp_path / "h.pt", model, half=True)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    loaded, ckpt = load_checkpoint(half)
    assert all(
        v.dtype == torch.float16
        for v in ckpt.state_dict.values()
        if v.is_floating_point()
    )
    for k, v in model.state_dict().items():
        got = loaded.state_dict()[k]
        assert got.dtype == v.dtype
        torch.testing.assert_close(got, v, rtol=1e-3, atol=1e-3)
