"""npe2 sample-data commands: shipped real images with their ground truth."""

from __future__ import annotations

from typing import Any

LayerDataTuple = tuple[Any, dict[str, Any], str]


def _layers(name: str, title: str) -> list[LayerDataTuple]:
    from napari_resunet.core.io import load_sample

    image, labels = load_sample(name)
    scale = image.voxel_size[-image.data.ndim :] if image.voxel_size else None
    common = {"scale": scale} if scale else {}
    return [
        (image.data, {"name": title, **common}, "image"),
        (
            labels.data,
            {"name": f"{title} ground truth", "opacity": 0.5, **common},
            "labels",
        ),
    ]


def sample_nuclei_2d() -> list[LayerDataTuple]:
    """U2OS nuclei (BBBC039, CC0), 520x696, with instance labels."""
    return _layers("nuclei2d", "nuclei 2D")


def sample_nuclei_3d() -> list[LayerDataTuple]:
    """Mouse-embryo nuclei (BBBC050, CC BY 3.0), 51x120x122 ZYX, with instance labels."""
    return _layers("nuclei3d", "nuclei 3D")
