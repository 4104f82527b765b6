"""Reading and writing images and labels (TIFF via tifffile), and shipped samples."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import tifffile
from numpy.typing import NDArray


def _default_file_mode() -> int:
    """Permissions of a newly created file under this process's umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_file_mode()


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    An interrupted or failed write leaves any existing file untouched and no
    temporary file behind. The new file gets the usual permissions (umask), not
    the owner-only mode of temporary files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ImageReadError(ValueError):
    """An image or label file could not be read."""


@dataclass(frozen=True)
class ImageFile:
    """Pixels plus what the file says about them."""

    data: NDArray
    axes: str | None = None
    voxel_size: tuple[float, ...] | None = None


def read_image(path: str | os.PathLike) -> ImageFile:
    """Read a TIFF image with its axes and voxel size when the file records them.

    Raises:
        ImageReadError: the file is missing or is not a readable TIFF.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"File not found: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            meta = tif.shaped_metadata[0] if tif.shaped_metadata else {}
            axes = meta.get("axes") or (tif.series[0].axes if tif.series else None)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as err:
        raise ImageReadError(f"Cannot read {path} as a TIFF image: {err}") from err
    if data.size == 0:
        raise ImageReadError(f"Cannot read {path}: the file holds no image data.")
    vs = meta.get("voxel_size_zyx_um")
    voxel_size = tuple(float(v) for v in vs) if vs else None
    return ImageFile(np.asarray(data), axes, voxel_size)


def write_tiff(
    path: str | os.PathLike,
    data: NDArray,
    axes: str | None = None,
    voxel_size: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``data`` to a zlib-compressed TIFF atomically.

    Args:
        overwrite: replace an existing file; without it an existing file is an error,
            so earlier results are never lost by accident.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} exists; choose another name or allow overwriting."
        )
    meta: dict = {}
    if axes:
        meta["axes"] = axes
    if voxel_size is not None:
        meta["voxel_size_zyx_um"] = [float(v) for v in voxel_size]
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, data, compression="zlib", metadata=meta or None)
    return path


SAMPLES = {
    "nuclei2d": "U2OS nuclei, BBBC039 (CC0), 520x696, instance labels",
    "nuclei3d": "mouse embryo nuclei, BBBC050 (CC BY 3.0), 51x120x122 ZYX, instance labels",
}


def load_sample(name: str) -> tuple[ImageFile, ImageFile]:
    """Return ``(image, labels)`` of a shipped sample (see ``SAMPLES``)."""
    if name not in SAMPLES:
        raise ValueError(
            f"Unknown sample {name!r}; choose one of {', '.join(SAMPLES)}."
        )
    root = resources.files("napari_resunet.data")
    with resources.as_file(root / f"{name}_image.tif") as img_path:
        image = read_image(img_path)
    with resources.as_file(root / f"{name}_labels.tif") as lab_path:
        labels = read_image(lab_path)
    return image, labels
