"""The harness's own accounting, checked on a real child process (no timing asserted)."""

from __future__ import annotations

import sys

from benchmarks import harness

#: A child whose three threads each block 500 times: 1,500 voluntary context switches at
#: least, all of them off the main thread.
THREADS_SLEEPING = """
import threading, time
def nap():
    for _ in range(500):
        time.sleep(0.0002)
ts = [threading.Thread(target=nap) for _ in range(3)]
[t.start() for t in ts]
[t.join() for t in ts]
"""


def test_context_switches_count_every_thread_of_the_run():
    r = harness.timed_run([sys.executable, "-c", THREADS_SLEEPING], sample_rss=True)
    assert r.returncode == 0, r.stderr
    # the main thread alone (what /proc/PID/status and psutil report) switched a few times
    assert r.context_switches >= 1500, r.context_switches
    assert 0 <= r.involuntary_switches <= r.context_switches
