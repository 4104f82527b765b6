"""Fine-tune round latency in a real viewer, and the longest event-loop stall.

For each case the script opens napari (run it under Xvfb), segments the image with
a new network through the Segment widget, "paints" corrections (ground truth pasted
into a corner through the layer's undo-able API, as a brush stroke would), then
clicks Fine-tune and waits until the re-segmented labels are back: that wall time
is the round latency. A QTimer probe ticking every 10 ms on the main thread
records the longest gap between ticks while jobs run (target <= 100 ms).

    xvfb-run -a env QT_QPA_PLATFORM=xcb python benchmarks/bench_finetune.py [--rounds 2]
        [--cases 2d 3d] [--queue off|after|eager] [--warm]

With ``--queue`` the Annotation queue is open on the image too, and re-ranks after
every round: ``after`` is the plugin's behaviour (the queue waits until the round
has segmented again), ``eager`` the behaviour before it (the queue's uncertainty
starts as soon as the model changes and shares the cores with the
re-segmentation). The "queue ready" column is click -> queue ranked.

Cases: 2D nuclei, 512x512 crop of the shipped BBBC039 field (2d: a foreground
network; 2d-cells: a cell network, the true cells pasted, where the queue gets a
forest's second opinion from the second round unless ``--no-second-opinion``);
3D, a 32x256x256 volume (FlyEM medulla from ../shared/data when present,
synthetic blobs otherwise).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class StallProbe:
    """Measures the longest gap between 10 ms timer ticks on the Qt main thread."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.worst = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last - 0.010)
        self.last = now

    def start(self) -> None:
        self.last, self.worst = None, 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc), MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _wait(widget, app, timeout=600.0, pending=lambda: False) -> None:
    """Until ``widget``'s job is done and ``pending()`` is false."""
    from qtpy.QtCore import QEvent

    t0 = time.perf_counter()
    while widget._job.busy or pending():
        app.processEvents()
        # processEvents() leaves deleteLater() undone (a running event loop does
        # it): napari's finished progress bars would stay, and with them the
        # status bar's animated "in progress" indicator, repainting the window
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        time.sleep(0.002)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{type(widget).__name__}'s job did not finish")


def _data(case: str):
    from napari_resunet.core.io import load_sample

    if case == "2d":
        image, labels = load_sample("nuclei2d")
        return image.data[:512, :512], labels.data[:512, :512] > 0, "BBBC039 512x512"
    if case == "2d-cells":
        image, labels = load_sample("nuclei2d")
        return image.data[:512, :512], labels.data[:512, :512], "BBBC039 512x512 cells"
    if (SHARED / "flyem_medulla3d").is_dir():
        import tifffile

        img = tifffile.imread(SHARED / "flyem_medulla3d" / "train_image.tif")[
            :32, :250, :250
        ]
        bnd = tifffile.imread(SHARED / "flyem_medulla3d" / "train_boundaries.tif")[
            :32, :250, :250
        ]
        pad = ((0, 0), (0, 6), (0, 6))
        return (
            np.pad(img, pad, mode="reflect"),
            np.pad(bnd, pad, mode="reflect") > 0,
            "FlyEM 32x256x256",
        )
    from napari_resunet.core.synthetic import make_blobs

    img, lab = make_blobs((32, 256, 256), n_objects=60, radius=6, seed=0)
    return img, lab > 0, "synthetic 32x256x256"


def live_tensor_mib() -> float:
    """Storage of all torch tensors Python can still reach, in MiB (shared counted once)."""
    import gc

    import torch

    gc.collect()
    seen: dict[int, int] = {}
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
                st = obj.untyped_storage()
                seen[st.data_ptr()] = st.nbytes()
        except Exception:  # noqa: BLE001 - odd tensor subclasses, freed storages
            continue
    return sum(seen.values()) / 2**20


_SNAPSHOT: list = []


def _trace_round(number: int, rounds: int) -> None:
    """With tracemalloc on: snapshot after round 5, compare after the last."""
    import tracemalloc

    if not tracemalloc.is_tracing() or number not in (5, rounds):
        return
    import gc

    gc.collect()
    snap = tracemalloc.take_snapshot()
    if number == 5 and rounds > 5:
        _SNAPSHOT[:] = [snap]
        return
    if not _SNAPSHOT:
        return
    stats = snap.compare_to(_SNAPSHOT[0], "traceback")
    total = sum(st.size_diff for st in stats) / 2**20
    print(f"traced Python/numpy memory, round 5 -> {number}: {total:+.1f} MiB")
    for st in stats[:8]:
        print(f"{st.size_diff / 2**20:+.2f} MiB in {st.count_diff:+d} blocks")
        for line in st.traceback.format()[-6:]:
            print("    " + line)


class _NeverSettling:
    """The model store as the queue saw it before it waited for rounds to settle."""

    def __init__(self, store) -> None:
        self.__dict__["_store"] = store

    def __getattr__(self, name):
        return False if name == "settling" else getattr(self._store, name)

    def __setattr__(self, name, value) -> None:
        setattr(self._store, name, value)


def _wait_for_warm_up(app) -> float:
    """Process events until the plugin's import warm-up thread has ended (as when
    a user opens the widgets and clicks a few seconds later); seconds waited."""
    import threading

    from napari_resunet.ui._model_store import WARM_UP_THREAD

    t0 = time.perf_counter()
    while any(t.name == WARM_UP_THREAD for t in threading.enumerate()):
        app.processEvents()
        time.sleep(0.01)
    return time.perf_counter() - t0


def run_case(
    case: str,
    rounds: int,
    queue: str = "off",
    warm: bool = False,
    second_opinion: bool = True,
    short_rounds: bool = True,
) -> list[dict]:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_resunet.ui.predict_widget import (
        MODE_INSTANCE,
        MODE_SEMANTIC,
        NEW_2D,
        NEW_3D,
    )

    image, truth, label = _data(case)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.add_image(image, name="img")
    _, seg = viewer.window.add_plugin_dock_widget("napari-resunet", "Segment")
    _, ft = viewer.window.add_plugin_dock_widget("napari-resunet", "Fine-tune")
    q = None
    if queue != "off":
        _, q = viewer.window.add_plugin_dock_widget(
            "napari-resunet", "Annotation queue"
        )
        q._patch_spin.value = 64  # as measured (the widget's default is now auto)
        q._committee_box.value = second_opinion
        if queue == "eager":  # the queue no longer sees that a round is settling
            q._store.settled.disconnect(q._on_model_changed)
            q._store = _NeverSettling(q._store)
    cells = case == "2d-cells"
    seg._model_combo.value = NEW_2D if case.startswith("2d") else NEW_3D
    # foreground (2D) and membrane (3D) classes: the corrections paste 0/1 truth;
    # 2d-cells: a cell network, the corrections paste the true cells
    seg._mode_combo.value = MODE_INSTANCE if cells else MODE_SEMANTIC
    if warm:
        print(f"warm-up ended {_wait_for_warm_up(app):.1f} s after the widgets opened")
    probe = StallProbe()
    probe.start()
    t0 = time.perf_counter()
    seg._run_button.clicked()
    _wait(seg, app)
    seg_time, seg_stall = time.perf_counter() - t0, probe.stop()
    out = viewer.layers["img [resunet]"]
    ft._image_combo.value = viewer.layers["img"]
    ft._labels_combo.value = out
    ft._short_check.value = short_rounds
    if q is not None:
        q._image_combo.value = viewer.layers["img"]
        q._labels_combo.value = out
        q._refresh_button.clicked()
        _wait(q, app)
    results = []
    for r in range(rounds):
        # each round the user corrects another block (cycling through the image)
        if case.startswith("2d"):
            k = r % 4
            region = (slice(128 * k, 128 * k + 128), slice(0, 192))
        else:
            k = r % 4
            region = (slice(8 * k, 8 * k + 8), slice(0, 128), slice(0, 128))
        fg = truth[region].astype(out.data.dtype)
        if cells:  # new ids, as a user painting new cells gets
            fg = np.where(fg > 0, fg + out.data.max() + 1, 0).astype(fg.dtype)
        idx = np.nonzero(out.data[region] != fg)
        out.data_setitem(tuple(i + s.start for i, s in zip(idx, region)), fg[idx])
        probe.start()
        t0 = time.perf_counter()
        ft._run_button.clicked()
        if ft._warned_of is not None:
            # a new network's corrections that only paint (2d-cells: its first
            # segmentation is empty) wait for a second click; this user means it
            ft._run_button.clicked()
        _wait(ft, app)
        elapsed = time.perf_counter() - t0
        if q is not None:
            # until the queue has ranked again (it may start only after the round)
            _wait(q, app, pending=lambda: q._status.value.startswith("Measuring"))
        queue_s = time.perf_counter() - t0 if q is not None else float("nan")
        stall = probe.stop()
        acc = float(((out.data > 0) == (truth > 0)).mean())
        rss = rss_mib()
        _trace_round(r + 1, rounds)
        tensors = live_tensor_mib()
        results.append(
            {
                "case": label,
                "round": r + 1,
                "round_s": elapsed,
                "queue_s": queue_s,
                "stall_ms": 1000 * stall,
                # the steps the round took (fewer where its time limit bound)
                "steps": ft._store.last_round["steps"],
                "loss_first": ft._plot.losses[0],
                "loss_last": ft._plot.losses[-1],
                "pixel_acc": acc,
                "rss_mib": rss,
                "tensor_mib": tensors,
                "segment_s": seg_time,
                "segment_stall_ms": 1000 * seg_stall,
            }
        )
        print(results[-1], flush=True)
    viewer.close()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--cases", nargs="+", default=["2d", "3d"], choices=["2d", "2d-cells", "3d"]
    )
    p.add_argument(
        "--no-second-opinion",
        action="store_true",
        help="with --queue: untick the queue's second opinion from a forest "
        "(it applies to 2d-cells from the second round)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--no-bfloat16",
        action="store_true",
        help="behave as on a CPU without native bfloat16: prediction and "
        "fine-tuning in float32 (with --threads 1, a stand-in for a slower CPU)",
    )
    p.add_argument(
        "--limit-scale",
        type=float,
        default=1.0,
        help="divide the Fine-tune widget's time limits (ROUND_TRAIN_SECONDS) by "
        "this: with --threads 1 --no-bfloat16, the 1.23 of a stand-in that much "
        "faster than the CPU it plays plans that CPU's steps; 0: no limit (the "
        "widget's 'keep rounds short' unticked)",
    )
    p.add_argument(
        "--queue",
        choices=["off", "after", "eager"],
        default="off",
        help="open the Annotation queue too (after: as the plugin does; eager: as "
        "before, the queue's uncertainty running beside the re-segmentation)",
    )
    p.add_argument(
        "--warm",
        action="store_true",
        help="click Segment only once the plugin's import warm-up has ended (as a "
        "user would, seconds after opening the widgets); default: at once",
    )
    p.add_argument(
        "--tracemalloc",
        action="store_true",
        help="print where Python/numpy memory grew between round 5 and the last",
    )
    args = p.parse_args()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(12)
    import torch

    torch.set_num_threads(args.threads)
    if args.no_bfloat16:  # "auto" precision asks this probe (core.device)
        import napari_resunet.core.device as device

        device.native_bfloat16_cpu = lambda: False
    if args.limit_scale:
        import napari_resunet.core.training.finetune as tf

        for key, limit in list(tf.ROUND_TRAIN_SECONDS.items()):
            tf.ROUND_TRAIN_SECONDS[key] = limit / args.limit_scale
    rows = []
    for case in args.cases:
        rows += run_case(
            case,
            args.rounds,
            args.queue,
            args.warm,
            not args.no_second_opinion,
            short_rounds=bool(args.limit_scale),
        )
    print(
        "\n| case | round | steps | round time (s) | queue ready (s) | longest stall (ms) | loss first→last | labels = truth | RSS (MiB) | live tensors (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['round']} | {r['steps']} | {r['round_s']:.1f} | "
            f"{r['queue_s']:.1f} | "
            f"{r['stall_ms']:.0f} | {r['loss_first']:.3f}→{r['loss_last']:.3f} | "
            f"{100 * r['pixel_acc']:.1f}% | {r['rss_mib']:.0f} | {r['tensor_mib']:.1f} |"
        )
    for case in dict.fromkeys(r["case"] for r in rows):
        r = next(x for x in rows if x["case"] == case)
        print(
            f"first segmentation of {case}: {r['segment_s']:.1f} s, longest stall "
            f"{r['segment_stall_ms']:.0f} ms"
        )


if __name__ == "__main__":
    main()
