"""Uncertainty maps (core.uncertainty): entropy, margin, disagreement under
flips and dropout, reuse of a segmentation's pass, and what the queue ranks by."""

import numpy as np
import pytest
from tests.conftest import tiny_model

from napari_resunet.core import InferenceConfig
from napari_resunet.core.progress import run_generator
from napari_resunet.core.uncertainty import (
    UncertaintyResult,
    entropy_map,
    foreground_entropy_map,
    iter_uncertainty,
    margin_map,
    queue_scores,
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


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_segmentations_pass_is_reused_with_the_same_result(blobs2d, dropout):
    from napari_resunet.core import predict

    image = blobs2d[0]
    model = tiny_model(2, dropout=dropout)
    cfg = InferenceConfig(use_compile="never")
    mc = 2 if dropout else 0
    full_steps, full = [], None
    gen = iter_uncertainty(model, image, cfg, n_flips=3, mc_samples=mc)
    try:
        while True:
            full_steps.append(next(gen))
    except StopIteration as stop:
        full = stop.value
    first = predict(model, image, cfg)  # what a segmentation computes
    steps = []
    gen = iter_uncertainty(model, image, cfg, 3, mc_samples=mc, first_pass=first)
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        reused = stop.value
    for name in ("probabilities", "entropy", "disagreement"):
        np.testing.assert_array_equal(getattr(reused, name), getattr(full, name))
    # one pass fewer, and the progress still ends at its total
    passes = 3 + mc
    assert steps[-1].total == full_steps[-1].total * (passes - 1) // passes
    assert steps[-1].step == steps[-1].total
    assert not any(rec.message.startswith("pass 1/") for rec in steps)
    with pytest.raises(ValueError, match="first_pass"):
        run_generator(
            iter_uncertainty(model, image, cfg, 3, first_pass=first[:, :10]), False, "u"
        )


def test_uncertainty_maps_are_the_mean_and_spread_of_the_flipped_passes(blobs2d):
    from napari_resunet.core import predict

    image = blobs2d[0]
    model = tiny_model(2, seed=3)
    cfg = InferenceConfig(use_compile="never")
    res = run_generator(iter_uncertainty(model, image, cfg, n_flips=3), False, "u")
    passes = [predict(model, image, cfg)]
    for axis in (1, 0):  # mirrored along X, then Y, and mirrored back
        flipped = np.ascontiguousarray(np.flip(image, axis))
        passes.append(np.flip(predict(model, flipped, cfg), axis + 1))
    stack = np.stack(passes)
    mean = stack.mean(axis=0)
    spread = np.abs(stack - mean).mean(axis=0).sum(axis=0)
    np.testing.assert_array_equal(res.probabilities, mean)
    np.testing.assert_array_equal(res.disagreement, np.clip(spread, 0, 1))
    np.testing.assert_array_equal(res.entropy, entropy_map(mean))
    # each pass is one mirroring even when the settings ask for test-time flips:
    # flip-averaged passes would hide the disagreement
    tta = cfg.replace(test_time_flips=4)
    res4 = run_generator(iter_uncertainty(model, image, tta, n_flips=3), False, "u")
    np.testing.assert_array_equal(res4.disagreement, res.disagreement)


def test_foreground_entropy_counts_cell_against_background_only():
    # background / interior / boundary
    probs = np.array(
        [
            [1.0, 0.0, 0.5, 0.0],
            [0.0, 0.5, 0.25, 1.0],
            [0.0, 0.5, 0.25, 0.0],
        ]
    )
    fg = foreground_entropy_map(probs)
    # sure background, sure cell (interior or rim: the same), a coin toss
    np.testing.assert_allclose(fg, [0.0, 0.0, 1.0, 0.0], atol=1e-4)
    assert fg.dtype == np.float32
    # the three-class entropy also counts the rim's interior-or-boundary doubt
    assert entropy_map(probs)[1] > 0.5


def _result(background: float, doubt_at_rims: bool) -> UncertaintyResult:
    """A mean prediction with ``background`` of its 100 pixels sure background
    and the rest cells, unsure between interior and boundary when
    ``doubt_at_rims``; the last cell pixel is a coin toss cell or background."""
    n_bg = int(round(100 * background))
    probs = np.zeros((3, 100), np.float32)
    probs[0, :n_bg] = 1.0
    probs[1, n_bg:] = 0.5 if doubt_at_rims else 1.0
    probs[2, n_bg:] = 0.5 if doubt_at_rims else 0.0
    probs[:, -1] = [0.5, 0.25, 0.25]
    return UncertaintyResult(probs, entropy_map(probs), np.zeros(100, np.float32))


def test_queue_scores_choose_by_network_and_image():
    nuclei = _result(0.8, doubt_at_rims=True)
    chosen = queue_scores(nuclei, cells=True, trained=True)
    np.testing.assert_array_equal(chosen, nuclei.foreground_entropy)
    assert chosen[:-1].max() < 1e-4 and chosen[-1] == pytest.approx(1.0, abs=1e-4)
    # the full score would rank the rims' interior-or-boundary doubt first
    assert nuclei.uncertainty[90] > 0.3
    # a new network's first ranking, a class network, tissue without background
    for res, cells, trained in (
        (nuclei, True, False),
        (nuclei, False, True),
        (_result(0.1, doubt_at_rims=True), True, True),
    ):
        np.testing.assert_array_equal(
            queue_scores(res, cells, trained), res.uncertainty
        )
    # the caller's answer to "is there background?" is used instead of a new sum
    np.testing.assert_array_equal(
        queue_scores(nuclei, True, True, background=False), nuclei.uncertainty
    )
    tissue = _result(0.1, doubt_at_rims=True)
    np.testing.assert_array_equal(
        queue_scores(tissue, True, True, background=True), tissue.foreground_entropy
    )
    np.testing.assert_array_equal(  # and never overrides a new or class network
        queue_scores(nuclei, True, False, background=True), nuclei.uncertainty
    )
    # a committee's opinion ranks a trained cell network that sees background
    opinion = np.zeros(nuclei.probabilities.shape[1:], np.float32)
    opinion[:10] = 1.0
    np.testing.assert_array_equal(
        queue_scores(nuclei, True, True, committee=opinion), opinion
    )
    for res, cells, trained, bg in (
        (nuclei, True, False, None),  # a new network: the full score still
        (nuclei, False, True, None),  # a class network
        (nuclei, True, True, False),  # no background: the forest's cells mean
    ):  # nothing there
        np.testing.assert_array_equal(
            queue_scores(res, cells, trained, background=bg, committee=opinion),
            res.uncertainty,
        )
