"""Rebuild the sample images shipped in ``src/napari_resunet/data`` from ../shared/data.

Only openly licensed sets are shipped (see that folder's README.md):
- nuclei2d: BBBC039v1 field IXMtest_A02_s1 (train split), CC0 1.0.
- nuclei3d: BBBC050 / QCANet 8-cell-stage embryo (train split), CC BY 3.0 / MIT.

    python scripts/make_sample_data.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import tifffile

OUT = Path(__file__).resolve().parents[1] / "src" / "napari_resunet" / "data"


def _write(path: Path, data, axes: str, voxel_size=None) -> None:
    meta = {"axes": axes}
    if voxel_size is not None:
        meta["voxel_size_zyx_um"] = list(voxel_size)
    tifffile.imwrite(path, data, compression="zlib", metadata=meta)
    print(f"{path.name}: {data.shape} {data.dtype}, {path.stat().st_size / 1e3:.0f} kB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    args = p.parse_args()
    shared = Path(args.shared)
    OUT.mkdir(parents=True, exist_ok=True)

    d = shared / "bbbc039_nuclei2d"
    name = json.loads((d / "split.json").read_text())["train"][0]
    assert name.startswith("IXMtest_A02_s1_")
    _write(
        OUT / "nuclei2d_image.tif", tifffile.imread(d / "images" / f"{name}.tif"), "YX"
    )
    _write(
        OUT / "nuclei2d_labels.tif", tifffile.imread(d / "labels" / f"{name}.tif"), "YX"
    )

    d = shared / "bbbc050_nuclei3d"
    vs = tifffile.TiffFile(d / "8_cell_stage_image.tif").shaped_metadata[0][
        "voxel_size_zyx_um"
    ]
    _write(
        OUT / "nuclei3d_image.tif",
        tifffile.imread(d / "8_cell_stage_image.tif"),
        "ZYX",
        vs,
    )
    _write(
        OUT / "nuclei3d_labels.tif",
        tifffile.imread(d / "8_cell_stage_labels.tif"),
        "ZYX",
        vs,
    )


if __name__ == "__main__":
    main()
