"""The annotation queue's second opinion from a random forest (``CommitteeConfig``)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_resunet.core.config._base import (
    _ConfigBase,
)


@dataclass(frozen=True)
class CommitteeConfig(_ConfigBase):
    """The annotation queue's second opinion on a 2D cell network
    (:mod:`napari_resunet.core.committee`): an ilastik-style random forest on
    scikit-image's ``multiscale_basic_features``, trained on the user's
    corrections. The defaults are what the simulated-user benchmark measured.

    Attributes:
        n_trees, max_depth: the forest's size.
        sigma_min, sigma_max: the features' Gaussian scales, in pixels (nuclei of
            10-40 px need the coarse ones).
        seed_min_distance: the forest's cells come from its foreground by a
            distance watershed with seeds at least this far apart (pixels): it
            has no boundary class to split touching cells by.
        min_class_pixels: corrected pixels each of background and cell needs
            before a forest is trained (below: no second opinion yet).
        max_train_pixels: corrected pixels drawn at most to train on (a seeded
            subsample beyond), which bounds the fit's memory.
        tree_samples: pixels each tree is grown from (a bootstrap sample of
            this size, scikit-learn's ``max_samples``; 0: as many as there are
            corrected pixels), which bounds the fit's time: 20 trees on 76,000
            corrected pixels took 2.1 s on two cores, on 20,000 each
            0.7 s (`benchmarks/bench_committee.py`).
        max_pixels: images with more pixels than this get no second opinion: the
            features take ``20 * channels * 4`` bytes per pixel.
        seed: the forest's and the subsample's random seed.
    """

    n_trees: int = 20
    max_depth: int = 10
    sigma_min: float = 1.0
    sigma_max: float = 16.0
    seed_min_distance: float = 6.0
    min_class_pixels: int = 50
    max_train_pixels: int = 200_000
    tree_samples: int = 20_000
    max_pixels: int = 2048 * 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.n_trees) < 1 or int(self.max_depth) < 1:
            raise ValueError("n_trees and max_depth must be >= 1.")
        if not 0.0 < self.sigma_min <= self.sigma_max:
            raise ValueError(
                f"Need 0 < sigma_min <= sigma_max, got {self.sigma_min}, "
                f"{self.sigma_max}."
            )
        if self.seed_min_distance <= 0:
            raise ValueError("seed_min_distance must be > 0.")
        if self.tree_samples < 0:
            raise ValueError(f"tree_samples must be >= 0, got {self.tree_samples}.")
        if min(self.min_class_pixels, self.max_train_pixels, self.max_pixels) < 1:
            raise ValueError(
                "min_class_pixels, max_train_pixels and max_pixels must be >= 1."
            )
