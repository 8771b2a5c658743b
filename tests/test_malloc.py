"""Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which pins glibc's mmap
threshold at 128 KiB: every batch array then faults its pages in afresh. A worker gives
glibc its large-array thresholds back (``pipeline.malloc``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, resource
import numpy as np
from astrocat.pipeline import malloc

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        a = np.ones((64, 64, 64, 3), np.float32)  # a batch of galaxy images, 3 MiB
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
pinned = faults()
done = malloc.keep_batches_on_the_heap()
faults()
print(json.dumps({"pinned": pinned, "heap": faults(), "done": done,
                  "again": malloc.keep_batches_on_the_heap()}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    r = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux")
def test_a_dask_worker_environment_gets_batches_back_on_the_heap():
    got = _probe(MALLOC_TRIM_THRESHOLD_="65536")  # what Dask's nanny sets
    assert got["done"] and got["again"]
    # each 3 MiB array was a fresh mmap (~770 page faults); then none
    assert got["pinned"] > 50 * 500, got
    assert got["heap"] < got["pinned"] / 20, got


def test_glibc_tuned_on_purpose_or_left_alone_is_not_touched():
    assert _probe(MALLOC_TRIM_THRESHOLD_="65536", MALLOC_MMAP_THRESHOLD_="131072")[
        "done"] is False
    assert _probe()["done"] is False  # no Dask nanny: glibc's sliding thresholds work
