"""Annotation sessions: immutable versions, reviewed patches, save and reopen."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from tests.conftest import tiny_model

from napari_resunet.core import InferenceConfig, predict
from napari_resunet.core.session import (
    AnnotationSession,
    SessionError,
    default_session_root,
)


def test_versions_are_immutable_and_reload_exactly(tmp_path, blobs2d):
    s = AnnotationSession.create(tmp_path / "s", image="blobs.tif")
    a = tiny_model(2, seed=1)
    b = tiny_model(2, seed=2)
    v1 = s.add_version(a, n_corrections=10, steps=5, score_before=0.5, score_after=0.6)
    v2 = s.add_version(b, n_corrections=20, steps=5, score_before=0.6, score_after=0.4)
    assert (v1.number, v2.number) == (1, 2)
    assert not v1.is_worse and v2.is_worse  # the second round made it worse: flagged
    first_file = (s.folder / v1.file).read_bytes()
    cfg = InferenceConfig(use_compile="never")
    np.testing.assert_array_equal(
        predict(s.load_version(1), blobs2d[0], cfg), predict(a, blobs2d[0], cfg)
    )
    assert (s.folder / v1.file).read_bytes() == first_file  # never rewritten
    with pytest.raises(SessionError, match="no version 3"):
        s.load_version(3)


def test_scores_measured_later_are_recorded_without_touching_the_checkpoint(
    tmp_path,
):
    s = AnnotationSession.create(tmp_path / "s")
    v = s.add_version(tiny_model(2), n_corrections=4, steps=3)
    assert v.score_before is None and v.score_after is None
    weights = (s.folder / v.file).read_bytes()
    scored = s.set_scores(1, 0.7, 0.6)
    assert (scored.score_before, scored.score_after) == (0.7, 0.6) and scored.is_worse
    assert scored.n_corrections == 4 and scored.file == v.file
    assert AnnotationSession.open(s.folder).versions == [scored]
    assert (s.folder / v.file).read_bytes() == weights
    assert s.set_scores(1, None, 0.8).score_before is None
    with pytest.raises(SessionError, match="no version v2"):
        s.set_scores(2, 0.1, 0.2)


def test_save_and_reopen_round_trip(tmp_path):
    s = AnnotationSession.create(tmp_path / "s", image="img.tif")
    s.add_version(tiny_model(2), n_corrections=3, steps=2)
    s.mark_reviewed((slice(0, 8), slice(8, 16)))
    s.mark_reviewed((slice(0, 8), slice(8, 16)))  # once only
    labels = np.zeros((16, 16), np.uint32)
    labels[2:5, 2:5] = 7
    edited = labels > 0
    s.save_corrections(labels, edited)
    r = AnnotationSession.open(tmp_path / "s")
    assert r.image == "img.tif"
    assert r.versions == s.versions
    assert r.reviewed == [(slice(0, 8), slice(8, 16))]
    assert r.reviewed_mask((16, 16)).sum() == 64
    got_labels, got_edited = r.load_corrections()
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(got_edited, edited)
    for k, v in s.load_version(1).state_dict().items():
        assert torch.equal(r.load_version(1).state_dict()[k], v)


def test_bad_folders(tmp_path):
    with pytest.raises(SessionError, match="No annotation session"):
        AnnotationSession.open(tmp_path)
    (tmp_path / "session.json").write_text('{"format": "something else"}')
    with pytest.raises(SessionError, match="not a napari-resunet session"):
        AnnotationSession.open(tmp_path)
    s = AnnotationSession.create(tmp_path / "s")
    with pytest.raises(SessionError, match="already holds a session"):
        AnnotationSession.create(tmp_path / "s")
    s.add_version(tiny_model(2))
    (s.folder / "models" / "v001.pt").unlink()
    with pytest.raises(SessionError, match="lacks model files"):
        AnnotationSession.open(s.folder)
    assert AnnotationSession.create(tmp_path / "fresh").load_corrections() is None


def test_default_root_is_in_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    root = default_session_root()
    assert root == tmp_path / "napari-resunet" / "sessions"
    s = AnnotationSession.create()
    assert s.folder.parent == root and (s.folder / "session.json").is_file()


def test_a_drop_below_the_shown_precision_is_not_flagged():
    from napari_resunet.core.session import WORSE_TOLERANCE, ModelVersion

    v = ModelVersion(1, "v1.pt", "2026-01-01T00:00:00", score_before=0.9874)
    assert not replace(v, score_after=0.9871).is_worse  # both shown as 0.987
    assert not replace(v, score_after=0.9874 - WORSE_TOLERANCE / 2).is_worse
    assert replace(v, score_after=0.9874 - 2 * WORSE_TOLERANCE).is_worse
    assert not replace(v, score_after=0.99).is_worse
    assert not replace(v, score_after=None).is_worse
