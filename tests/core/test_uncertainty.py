import numpy as np
import pytest
from tests.conftest import tiny_model

from napari_resunet.core import InferenceConfig
from napari_resunet.core.progress import run_generator
from napari_resunet.core.uncertainty import (
    entropy_map,
    iter_uncertainty,
    margin_map,
    rank_patches,
)


def test_entropy_and_margin_known_values():
    sure = np.array([[1.0], [0.0]])
    unsure = np.array([[0.5], [0.5]])
    assert entropy_map(sure)[0] == pytest.approx(0.0, abs=1e-5)
    assert entropy_map(unsure)[0] == pytest.approx(1.0)
    assert margin_map(sure)[0] == pytest.approx(0.0)
    assert margin_map(unsure)[0] == pytest.approx(1.0)
    three = np.array([[0.6], [0.3], [0.1]])
    assert margin_map(three)[0] == pytest.approx(0.7)


@pytest.mark.parametrize("dims", [2, 3])
def test_flip_uncertainty_contract(dims, blobs2d, blobs3d):
    image = blobs2d[0] if dims == 2 else blobs3d[0]
    model = tiny_model(dims)
    cfg = InferenceConfig(use_compile="never")
    res = run_generator(iter_uncertainty(model, image, cfg, n_flips=3), False, "u")
    assert res.probabilities.shape == (2, *image.shape)
    for m in (res.entropy, res.disagreement, res.uncertainty):
        assert m.shape == image.shape and m.dtype == np.float32
        assert m.min() >= 0 and m.max() <= 1
    # an untrained, randomly initialised net is not flip-equivariant: it disagrees
    assert res.disagreement.mean() > 0
    # with one pass there is nothing to disagree about
    one = run_generator(iter_uncertainty(model, image, cfg, n_flips=1), False, "u")
    assert one.disagreement.max() == 0


def test_rank_patches_orders_and_excludes():
    u = np.zeros((8, 8), np.float32)
    u[4:8, 0:4] = 1.0
    u[0:4, 4:8] = 0.5
    ranked = rank_patches(u, (4, 4))
    assert [r.start for r in ranked[:2]] == [(4, 0), (0, 4)]
    assert ranked[0].score == 1.0 and ranked[0].centre == (5.5, 1.5)
    reviewed = np.zeros((8, 8), bool)
    reviewed[4:8, 0:4] = True
    assert rank_patches(u, (4, 4), exclude=reviewed, top_k=1)[0].start == (0, 4)
    edge = rank_patches(np.ones((5, 5)), (4, 4))
    assert len(edge) == 4 and edge[-1].slices == (slice(1, 5), slice(1, 5))  # full size
    assert all(s.stop - s.start == 4 for e in edge for s in e.slices)
    with pytest.raises(ValueError):
        rank_patches(u, (4,))


def test_mc_dropout_samples_add_disagreement(blobs2d):
    import torch

    model = tiny_model(2, dropout=0.3)
    cfg = InferenceConfig(use_compile="never")
    state = torch.random.get_rng_state()
    flips_only = run_generator(
        iter_uncertainty(model, blobs2d[0], cfg, n_flips=1), False, "u"
    )
    with_mc = run_generator(
        iter_uncertainty(model, blobs2d[0], cfg, n_flips=1, mc_samples=3), False, "u"
    )
    assert flips_only.disagreement.max() == 0
    assert with_mc.disagreement.mean() > 0  # dropout samples differ from each other
    again = run_generator(
        iter_uncertainty(model, blobs2d[0], cfg, n_flips=1, mc_samples=3), False, "u"
    )
    np.testing.assert_array_equal(again.disagreement, with_mc.disagreement)  # seeded
    assert torch.equal(torch.random.get_rng_state(), state)
    # the shared inference copy is back in eval mode: plain prediction is unchanged
    from napari_resunet.core import predict

    a = predict(model, blobs2d[0], cfg)
    np.testing.assert_array_equal(a, predict(model, blobs2d[0], cfg))
    # a network without dropout ignores mc_samples
    plain = run_generator(
        iter_uncertainty(tiny_model(2), blobs2d[0], cfg, n_flips=1, mc_samples=3),
        False,
        "u",
    )
    assert plain.disagreement.max() == 0
