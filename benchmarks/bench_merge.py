"""How long writing a new prediction into an edited Labels layer holds the viewer.

After every segmentation the plugin merges the new labels with the user's edits
(painted voxels kept, cells continued across reviewed patches, rims joined to
repainted cells, cell ids continued) and writes what changed into the layer.
This script builds a cell volume, paints corrections into reviewed cubes, then
writes a "next round's" prediction (the same cells renumbered, as a watershed
does, and one voxel larger along Y) in two ways and reports the longest gap
between 10 ms timer ticks on the Qt main thread:

- ``all here``: everything on the main thread (``write_prediction``);
- ``job``: the plugin's way, the merge in a worker (``begin_write`` and
  ``finish_write`` on the main thread, ``merge_pending`` in a worker).

It also reports how many voxels were written, against the foreground voxels that
had to be written when every prediction renumbered the cells.

    xvfb-run -a env QT_QPA_PLATFORM=xcb python benchmarks/bench_merge.py \
        [--shape 128 512 512] [--cubes 12]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from bench_finetune import StallProbe  # run from benchmarks/ or by path


def cells(shape: tuple[int, ...], n: int, radius: float, seed: int) -> np.ndarray:
    """Touching blobs: each voxel within ``radius`` of a seed takes its id."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.uint32)
    pts = rng.integers(0, shape, size=(n, len(shape)))
    seeds[tuple(pts.T)] = np.arange(1, n + 1, dtype=np.uint32)
    dist, idx = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    out = seeds[tuple(idx)]
    out[dist > radius] = 0
    return out


def scenario(shape: tuple[int, ...], n_cubes: int, seed: int = 0):
    """(shown labels, the prediction they came from, next prediction, boxes)."""
    rng = np.random.default_rng(seed)
    n_cells = max(1, int(np.prod(shape) / 11_000))
    previous = cells(shape, n_cells, 12, seed)
    shown = previous.copy()
    boxes = []
    for _ in range(n_cubes):
        start = [int(rng.integers(0, max(1, s - 64))) for s in shape]
        box = tuple(slice(a, a + 64) for a in start)
        boxes.append(box)
        # the user's corrections: the cells there, moved by two voxels
        shown[box] = np.roll(shown[box], 2, axis=-1)
    # the next round: the same cells, renumbered, one voxel larger along Y
    perm = np.concatenate([[0], rng.permutation(int(previous.max())) + 1])
    nxt = perm[ndimage.grey_dilation(previous, size=(1,) * (len(shape) - 2) + (2, 1))]
    return shown, previous, nxt.astype(np.uint32), boxes


def run(shape: tuple[int, ...], n_cubes: int) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_resunet.ui._layers import (
        ImageSnapshot,
        begin_write,
        finish_write,
        write_prediction,
    )
    from napari_resunet.ui._model_store import get_store
    from napari_resunet.ui._predict_job import _iter_merge
    from napari_resunet.ui._workers import start_job

    shown, previous, nxt, boxes = scenario(shape, n_cubes)
    print(
        f"{'x'.join(map(str, shape))} cells ({int(previous.max())} cells), "
        f"{n_cubes} reviewed 64^3 cubes; foreground {int((nxt > 0).sum()):,} voxels"
    )
    snap = ImageSnapshot(
        np.zeros(shape, np.float32),
        None,
        (1.0,) * len(shape),
        (0.0,) * len(shape),
        "img",
    )
    print(f"{'way':>9} | {'longest stall (s)':>17} | {'total (s)':>9} | written")
    for way in ("all here", "job"):
        viewer = napari.Viewer(show=False)
        app = QApplication.instance()
        store = get_store(viewer)
        store.reviewed[:] = boxes
        layer = viewer.add_labels(shown.copy(), name="img [resunet]")
        track = store.track(layer)
        track.last_prediction = previous
        before = np.array(layer.data, copy=True)
        probe = StallProbe()
        probe.start()
        app.processEvents()
        t0 = time.perf_counter()
        if way == "all here":
            write_prediction(viewer, store, snap, nxt, instances=True)
        else:
            pending = begin_write(viewer, store, snap, nxt, instances=True)
            done = []

            def merged(result, pending=pending, done=done, viewer=viewer, store=store):
                finish_write(viewer, store, snap, pending, *result)
                done.append(True)

            start_job(_iter_merge, pending, on_returned=merged)
            while not done:
                app.processEvents()
                time.sleep(0.002)
        total = time.perf_counter() - t0
        app.processEvents()
        stall = probe.stop()
        written = int((np.asarray(layer.data) != before).sum())
        print(f"{way:>9} | {stall:17.2f} | {total:9.2f} | {written:,}")
        viewer.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs="+", default=[128, 512, 512])
    p.add_argument("--cubes", type=int, default=12)
    a = p.parse_args()
    run(tuple(a.shape), a.cubes)


if __name__ == "__main__":
    main()
