"""Device selection and giving memory back after a job."""

import sys
import threading

import pytest
import torch

from napari_resunet.core.device import (
    release_memory,
    resolve_device,
    trim_host_memory,
)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="Unknown device"):
        resolve_device("tpu-9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_trim_returns_a_worker_threads_freed_memory():
    """A job thread's small freed allocations stay in its malloc arena (RSS) until
    trimmed: 200 MB allocated in 2 kB pieces, one in 32 kept alive."""
    survivors = []

    def job():
        pieces = [bytearray(2000) for _ in range(100_000)]
        survivors.extend(pieces[::32])

    t = threading.Thread(target=job)
    t.start()
    t.join()
    before = _rss_mib()
    assert trim_host_memory()
    after = _rss_mib()
    assert before - after > 80, (before, after)
    assert len(survivors) == 3125 and all(len(p) == 2000 for p in survivors)
    release_memory(torch.device("cpu"))  # the CPU path: trimming only, no error
