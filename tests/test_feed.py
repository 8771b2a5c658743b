"""The pipelined worker: decoder threads and engine threads keep the rows in input order,
account for every bad input, keep memory flat, size batches from a memory budget, and
place one worker per GPU (tested with a fake device list: no GPU here)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from astrocat.kinds import Kind
from astrocat.models.card import InputSpec
from astrocat.models.zoo import bundled
from astrocat.pipeline import feed
from astrocat.pipeline.cluster import (
    ClusterInfo,
    cuda_cluster_kwargs,
    feed_for,
    gpu_devices,
)
from astrocat.pipeline.feed import Feed, choose_batch
from astrocat.pipeline.plan import FileRef, family, plan_partitions
from astrocat.pipeline.worker import Job, run_partition


def _survey(d: Path, n: int, bad_every: int = 0) -> list[FileRef]:
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    refs = []
    for i in range(n):
        p = d / f"{100000 + i}.png"
        if bad_every and i % bad_every == bad_every - 1:
            p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))  # a broken PNG
        else:
            Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(p)
        st = p.stat()
        refs.append(FileRef(str(p), p.name, st.st_size, st.st_mtime_ns, family(p.name)))
    return refs


def _job(tmp: Path, parts: str, **feed_kw) -> Job:
    card = bundled()["gz2-cnn"]
    return Job(cards={card.name: card}, engines={card.name: "onnxruntime"},
               parts_dir=str(tmp / parts), feed=Feed(**feed_kw), output_order=(card.name,),
               routing={Kind.RGB_IMAGE: card.name}, root=str(tmp / "in"))


def test_rows_keep_input_order_errors_and_match_a_sequential_run(tmp_path):
    refs = _survey(tmp_path / "in", 300, bad_every=37)
    card = bundled()["gz2-cnn"]
    (part,) = list(plan_partitions(refs, {Kind.RGB_IMAGE: card}, 1000))
    fast = _job(tmp_path, "a", decoders=4, engines=2, batch_size=32)
    slow = _job(tmp_path, "b", decoders=1, engines=1, batch_size=7)
    for job in (fast, slow):
        Path(job.parts_dir).mkdir()
        stats = run_partition(part, job)
        assert stats["n_rows"] == 300 and stats["n_errors"] == 300 // 37
    a = pq.read_table(next((tmp_path / "a").glob("part-*.parquet"))).to_pandas()
    b = pq.read_table(next((tmp_path / "b").glob("part-*.parquet"))).to_pandas()
    assert list(a["source"]) == [r.source for r in refs]  # input order, whatever finished first
    bad = a["status"] == "error"
    assert list(bad[bad].index) == [i for i in range(300) if i % 37 == 36]
    assert all("PNG" in e or "image" in e for e in a.loc[bad, "error"])
    assert np.isnan(a.loc[bad, "gz_smooth"]).all()
    cols = [c for c in a.columns if c.startswith("gz_")]
    assert np.allclose(a[cols].to_numpy(), b[cols].to_numpy(), atol=1e-5, equal_nan=True)


#: Peak RSS of a child is read from /proc/self/status VmHWM (its own address space):
#: ``ru_maxrss`` would carry the pytest parent's high-water mark across fork and exec.


def test_memory_stays_flat_on_a_long_partition(tmp_path):
    _survey(tmp_path / "in", 2400)
    code = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        from astrocat.kinds import Kind
        from astrocat.models.zoo import bundled
        from astrocat.pipeline.feed import Feed
        from astrocat.pipeline.plan import FileRef, family, plan_partitions
        from astrocat.pipeline.worker import Job, run_partition
        n = int(sys.argv[1])
        files = sorted(Path({str(tmp_path / 'in')!r}).glob('*.png'))[:n]
        refs = [FileRef(str(p), p.name, p.stat().st_size, p.stat().st_mtime_ns, family(p.name))
                for p in files]
        card = bundled()['gz2-cnn']
        job = Job(cards={{card.name: card}}, engines={{card.name: 'onnxruntime'}},
                  parts_dir=sys.argv[2], feed=Feed(decoders=2, engines=2),
                  output_order=(card.name,), routing={{Kind.RGB_IMAGE: card.name}},
                  root={str(tmp_path / 'in')!r})
        (part,) = list(plan_partitions(refs, {{Kind.RGB_IMAGE: card}}, 100000))
        run_partition(part, job)
        print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))
    """)
    peaks = {}
    # The engines' arenas and the prefetch fill up over the first few batches: compare
    # two lengths past that, four times apart.
    for n in (600, 2400):
        out = tmp_path / f"p{n}"
        out.mkdir()
        r = subprocess.run([sys.executable, "-c", code, str(n), str(out)], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        peaks[n] = json.loads(r.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB
    # four times the items, the same bounded prefetch: the peak grows by a few MB at most
    assert peaks[2400] - peaks[600] < 40, peaks


def test_batch_size_follows_the_memory_budget():
    gz2, lens = bundled()["gz2-cnn"], bundled()["lens-lastro"]
    # the activations come from the graph's shapes: the lens CNN's are ~70x its input
    assert feed.item_bytes(lens) > 60 * 101 * 101 * 4
    # on a CPU one batch's activations stay within CPU_BATCH_BYTES, however large the budget
    for card in (gz2, lens):
        b = choose_batch(card, 2 << 30)
        assert 16 <= b <= feed.MAX_BATCH
        assert b * feed.item_bytes(card) <= feed.CPU_BATCH_BYTES
    assert choose_batch(gz2, 2 << 30, requested=500) == 500  # --batch-size wins
    big = InputSpec(Kind.RGB_IMAGE, (224, 224, 3), "scale_255")

    class Card:  # enough of a card for the estimate
        input = big
        tta = 1

    per_item = feed.item_bytes(Card)
    assert per_item > 224 * 224 * 3 * 4 * 10  # activations dominate
    b = choose_batch(Card, 256 << 20)
    assert 1 <= b < 16 and b * feed.IN_FLIGHT * per_item <= 256 << 20
    assert choose_batch(Card, 1 << 10) == 1  # never zero
    # eight engine instances may run eight batches at once: each gets its share
    b8 = choose_batch(Card, 256 << 20, engines=8)
    assert 1 <= b8 < b and b8 * 8 * per_item <= 256 << 20
    # eight TTA views: eight times the network's activations per item, so smaller batches
    Card.tta = 8
    assert feed.item_bytes(Card) > 7 * per_item
    assert choose_batch(Card, 256 << 20) < b
    Card.tta = 1
    # on a GPU: bigger batches, bounded by the device's memory too
    assert choose_batch(gz2, 64 << 30, device_memory=40 << 30) == feed.MAX_GPU_BATCH
    assert choose_batch(Card, 64 << 30, device_memory=1 << 30) == (1 << 30) // per_item


FAKE_SMI = """0, NVIDIA H100 80GB HBM3, 81559
1, NVIDIA H100 80GB HBM3, 81559
2, NVIDIA H100 80GB HBM3, 81559
3, NVIDIA H100 80GB HBM3, 81559
"""


def test_one_worker_per_gpu_fed_by_its_share_of_the_cores():
    devices = gpu_devices(FAKE_SMI)
    assert [d.index for d in devices] == [0, 1, 2, 3] and devices[0].memory_mib == 81559
    assert cuda_cluster_kwargs(devices) == {"CUDA_VISIBLE_DEVICES": "0,1,2,3",
                                            "n_workers": 4, "threads_per_worker": 2}
    info = ClusterInfo("tcp://x", 4, 64 // 4, True, gpus=4)
    f = feed_for(info, None, 8 << 30, devices)
    assert (f.decoders, f.engines, f.device) == (16, 1, 0)
    assert f.device_memory == int(81559 * 0.5) << 20
    cpu = feed_for(ClusterInfo("tcp://x", 1, 2, True, in_process=True), None, 1 << 30)
    assert (cpu.decoders, cpu.engines, cpu.device_memory) == (2, 2, 0)
    assert gpu_devices("") == []


def test_dask_client_places_workers_with_dask_cuda(monkeypatch):
    """The GPU path hands dask-cuda one worker per device (a stand-in LocalCUDACluster
    records the call; it runs in-process threads since there is no GPU here)."""
    import types

    import distributed

    from astrocat.pipeline import cluster as cl

    seen = {}

    def fake_cuda_cluster(**kwargs):
        seen.update(kwargs)
        return distributed.LocalCluster(n_workers=kwargs["n_workers"], processes=False,
                                        threads_per_worker=1, dashboard_address=None)

    monkeypatch.setitem(sys.modules, "dask_cuda",
                        types.SimpleNamespace(LocalCUDACluster=fake_cuda_cluster))
    monkeypatch.setattr(cl, "gpu_devices", lambda: gpu_devices(FAKE_SMI[:60]))
    with cl.dask_client(None, None, gpu=True) as (client, info):
        assert info.gpus == 2 and info.n_workers == 2
        assert len(client.scheduler_info()["workers"]) == 2
    assert seen["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_without_dask_cuda_one_plain_worker_per_gpu(monkeypatch):
    """No dask-cuda: plain distributed workers, one per GPU, each seeing only its GPU (a
    stand-in cluster runs in-process threads since there is no GPU here)."""
    import distributed

    from astrocat.pipeline import cluster as cl

    specs = cl.gpu_worker_specs(gpu_devices(FAKE_SMI), 16)
    assert [s["options"]["env"]["CUDA_VISIBLE_DEVICES"] for s in specs.values()] == [
        "0", "1", "2", "3"]
    assert all(s["cls"] is distributed.Nanny and s["options"]["nthreads"] == 2
               and s["options"]["env"]["OMP_NUM_THREADS"] == "16" for s in specs.values())
    seen = {}

    def fake_spec_cluster(devices, threads):
        seen.update(devices=[d.index for d in devices], threads=threads)
        return distributed.LocalCluster(n_workers=len(devices), processes=False,
                                        threads_per_worker=1, dashboard_address=None)

    monkeypatch.setitem(sys.modules, "dask_cuda", None)
    monkeypatch.setattr(cl, "gpu_spec_cluster", fake_spec_cluster)
    monkeypatch.setattr(cl, "gpu_devices", lambda: gpu_devices(FAKE_SMI[:60]))
    monkeypatch.setattr(cl, "machine_cores", lambda: 16)
    with cl.dask_client(None, None, gpu=True) as (client, info):
        assert info.gpus == 2 and info.n_workers == 2 and info.cores_per_worker == 8
        assert "one per GPU" in info.description
    assert seen == {"devices": [0, 1], "threads": 8}


def test_a_64_core_node_gets_a_worker_process_per_four_cores(monkeypatch):
    """The CPU placement on a large node: one process cannot keep 64 cores busy (the
    GIL), so an embedded cluster gets a worker process per ``CORES_PER_PROCESS`` cores,
    each with its numeric libraries held to its share, fed by as many decoders and
    single-threaded engines as it has cores (a stand-in LocalCluster records the call and
    runs in-process: this machine has 2 cores); up to 4 cores one process does it all
    with Dask's threaded scheduler."""
    import contextlib

    import distributed

    from astrocat.pipeline import cluster as cl

    seen, real = {}, distributed.LocalCluster

    def fake_local_cluster(**kwargs):
        seen.update(kwargs)
        return real(n_workers=1, processes=False, threads_per_worker=1,
                    dashboard_address=None)

    monkeypatch.setattr(distributed, "LocalCluster", fake_local_cluster)
    monkeypatch.setattr(cl, "machine_cores", lambda: 64)
    with contextlib.ExitStack() as stack:
        lazy = cl.LazyCluster(stack, None, None)
        assert not lazy.threaded
        info = lazy.info
        assert (info.n_workers, info.cores_per_worker) == (16, 4)
        assert info.description == "embedded LocalCluster, 16 workers"
        assert lazy.reason.startswith("64 cores: one process keeps about 4 busy (the GIL), "
                                      "so one worker process per 4 cores")
    assert seen["n_workers"] == 16 and seen["processes"] is True
    assert seen["threads_per_worker"] == cl.TASK_THREADS
    assert all(seen["env"][k] == "4" for k in cl._THREAD_ENV)
    f = feed_for(info, None, None)
    assert (f.decoders, f.engines, f.intra_op) == (4, 4, 1)
    import psutil

    assert abs(f.memory_budget - psutil.virtual_memory().total * 0.5 / 16) <= 1  # a 16th each
    monkeypatch.setattr(cl, "machine_cores", lambda: 4)
    with contextlib.ExitStack() as stack:
        small = cl.LazyCluster(stack, None, None)
        assert small.threaded and small.info.cores_per_worker == 4
        assert small.info.address == cl.THREADED
        assert small.reason.startswith("4 core(s): one process keeps up to 4 busy")
        assert "a decoder thread and a single-threaded engine per core" in small.reason
    with contextlib.ExitStack() as stack:
        assert cl.LazyCluster(stack, None, None).reason.startswith("every partition's part")


def test_a_224_px_network_stays_within_the_memory_budget(tmp_path):
    """Peak RSS of a whole run with a 224-px CNN: with --memory-budget 256MB the batches
    add less than the budget to what one item at a time costs (batch 128 would add GBs)."""
    from onnx_graphs import conv_image_graph

    model = tmp_path / "m" / "model.onnx"
    model.parent.mkdir()
    conv_image_graph(model, 224, 5)
    subprocess.run([sys.executable, "-m", "astrocat.cli", "models", "init", str(model)],
                   check=True, capture_output=True)
    card = model.parent / "card.toml"
    rng = np.random.default_rng(1)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(
            imgs / f"{i}.png")
    code = textwrap.dedent("""
        import json, sys
        from click.testing import CliRunner
        from astrocat.cli import main
        r = CliRunner().invoke(main, ["infer", "-q", "--input", sys.argv[1], "--out",
                                      sys.argv[2], "--model", sys.argv[3], *sys.argv[4:]])
        assert r.exit_code == 0, r.output
        print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))
    """)
    peaks = {}
    for label, extra in (("one", ["--batch-size", "1"]), ("budget", ["--memory-budget",
                                                                     "256MB"])):
        r = subprocess.run([sys.executable, "-c", code, str(imgs), str(tmp_path / f"{label}"
                            ".parquet"), str(card), *extra], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        peaks[label] = json.loads(r.stdout.strip().splitlines()[-1]) * 1024  # bytes
    print({k: f"{v / 2**20:.0f} MiB" for k, v in peaks.items()})
    assert 0 < peaks["budget"] - peaks["one"] < 256 << 20, peaks


def test_plain_gpu_workers_each_see_only_their_gpu():
    """The workers really start with their own CUDA_VISIBLE_DEVICES (two processes; the
    variable is only read by CUDA, so no GPU is needed to check it)."""
    import os

    from distributed import Client

    from astrocat.pipeline import cluster as cl

    with cl.gpu_spec_cluster(gpu_devices(FAKE_SMI[:60]), 1) as c, Client(c) as client:
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
    assert sorted(seen.values()) == ["0", "1"]


def test_gpu_decoded_batches_fail_only_the_jpegs_the_decoder_refuses(tmp_path, monkeypatch):
    """JPEG bytes batched for the engine thread (``Feed.gpu_decode``): the items the
    decoder refused (``feed.Decoded.errors``) are error rows, every other item is a
    result, and a batch that decoded nothing costs only its own items (no torch here: a
    stand-in engine gives what ``feed._columns`` gives)."""
    import concurrent.futures as cf

    from astrocat.pipeline import worker
    from astrocat.pipeline.rows import Rows

    card = bundled()["gz2-cnn"]
    job = _job(tmp_path, "p", batch_size=4)

    class Engine:
        def submit(self, x):
            assert isinstance(x, feed.Jpegs)
            ok = np.array([k for k, d in enumerate(x.datas) if d != b"bad"], np.int64)
            errors = {k: "JPEG data is truncated or corrupt (Image is incomplete or truncated)"
                      for k, d in enumerate(x.datas) if d == b"bad"}
            cols = {o.name: np.full(len(ok), 0.5, np.float32) for o in card.outputs}
            fut: cf.Future = cf.Future()
            fut.set_result(feed.Decoded(cols if len(ok) else {}, ok, errors))
            return fut

    monkeypatch.setattr(feed, "engine", lambda *a: Engine())
    # two partitions, the second starting inside the third batch (items 8-9 | 0-1)
    owners = [worker._Open(None, Rows(job.cards, job.output_order)) for _ in range(2)]  # noqa: SLF001
    settled = []
    batches = worker._Batches(card, job, settled.append)  # noqa: SLF001
    bad = {1, 4, 5, 6, 7, 11}  # the second batch (4-7) decodes nothing
    for k in range(14):
        owner = owners[k // 10]
        i = owner.rows.add(object_id=str(k), source=f"{k}.jpg", hdu=-1, kind="rgb_image",
                           model=card.name)
        batches.add_jpeg(owner, i, b"bad" if k in bad else b"jpeg")
        if k == 9:
            owner.loaded = True
    owners[1].loaded = True
    assert not settled  # items 4-11 are still in flight: nothing may be written yet
    batches.finish()
    assert settled == owners
    for owner, ks in zip(owners, (range(10), range(10, 14)), strict=True):
        t = owner.rows.table()
        status, error = t["status"].to_pylist(), t["error"].to_pylist()
        mine = [k - ks[0] for k in sorted(bad) if k in ks]
        assert [j for j, s in enumerate(status) if s == "error"] == mine
        assert all(error[j].startswith("JPEG data is truncated") for j in mine)
        values = t["gz_smooth"].to_numpy()
        assert all(values[j] == 0.5 for j in range(len(ks)) if j not in mine)
        assert np.isnan(values[mine]).all()


def test_engines_close_when_the_last_run_in_flight_has_its_partitions():
    """A finished or interrupted run closes this process's engines and waits for their
    threads (their arenas are most of its memory, and a process must not exit under a
    running session); not while another run of the process is in flight. A task still
    unwinding is refused a new batch."""
    import pytest

    card = bundled()["gz2-cnn"]
    f = Feed(decoders=1, engines=1, intra_op=1)
    x = np.zeros((2, *card.input.shape), np.float32)
    with feed.partitions_in_flight():
        with feed.partitions_in_flight():  # a second run in flight in this process
            first = feed.engine(card, "onnxruntime", f)
            first.submit(x).result(timeout=60)
        assert feed.engine(card, "onnxruntime", f) is first  # the other run still uses it
    assert not feed._ENGINES  # noqa: SLF001
    assert not any(t.is_alive() for t in first._threads)  # noqa: SLF001
    with pytest.raises(KeyboardInterrupt), feed.partitions_in_flight():
        second = feed.engine(card, "onnxruntime", f)
        pending = [second.submit(x) for _ in range(3)]
        raise KeyboardInterrupt
    assert not feed._ENGINES  # noqa: SLF001
    assert all(p.done() and p.exception() is None for p in pending)  # queued ones ran
    assert not any(t.is_alive() for t in second._threads)  # noqa: SLF001
    with pytest.raises(feed.EnginesClosed):
        second.submit(x)


def _parts(refs: list[FileRef], size: int) -> list:
    card = bundled()["gz2-cnn"]
    return list(plan_partitions(refs, {Kind.RGB_IMAGE: card}, size))


def test_a_stream_of_partitions_writes_what_one_partition_at_a_time_writes(tmp_path):
    """``run_partitions``: partitions through one pipeline, batches spanning their
    boundaries (32 does not divide them), each part written and reported once, with the
    same rows as each partition run alone (batches of 7)."""
    from astrocat.pipeline.worker import run_partitions

    refs = _survey(tmp_path / "in", 300, bad_every=37)
    parts = _parts(refs, 40)
    assert len(parts) > 4
    stream, alone = _job(tmp_path, "s", decoders=2, engines=2, batch_size=32), \
        _job(tmp_path, "a", decoders=1, engines=1, batch_size=7)
    for job in (stream, alone):
        Path(job.parts_dir).mkdir()
    reported = []
    run_partitions(iter(parts), stream, lambda p, stats: reported.append((p, stats)))
    assert sorted(p.key for p, _ in reported) == sorted(p.key for p in parts)
    assert sum(s["n_rows"] for _, s in reported) == 300
    assert sum(s["n_errors"] for _, s in reported) == 300 // 37
    for p in parts:
        run_partition(p, alone)
        a = pq.read_table(tmp_path / "s" / f"part-{p.key}.parquet").to_pandas()
        b = pq.read_table(tmp_path / "a" / f"part-{p.key}.parquet").to_pandas()
        assert list(a["source"]) == [s.unit.source for s in p.slices]
        assert list(a["status"]) == list(b["status"]) and list(a["error"]) == list(b["error"])
        cols = [c for c in a.columns if c.startswith("gz_")]
        assert np.allclose(a[cols].to_numpy(), b[cols].to_numpy(), atol=1e-5, equal_nan=True)


def test_a_stream_that_fails_fails_only_its_partitions_in_flight(tmp_path, monkeypatch):
    """A failure inside the stream (here the third batch's results) makes the partitions
    then in flight error rows to retry, with the traceback in errors.log; the partitions
    already written keep their results and the rest go on through a fresh pipeline."""
    from astrocat.pipeline import worker

    refs = _survey(tmp_path / "in", 200)
    parts = _parts(refs, 40)
    job = _job(tmp_path, "s", decoders=2, engines=1, batch_size=16)
    Path(job.parts_dir).mkdir()
    calls = [0]
    real = worker._Batches.collect  # noqa: SLF001

    def collect(self):
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("engine fell over")
        return real(self)

    monkeypatch.setattr(worker._Batches, "collect", collect)  # noqa: SLF001
    reported = []
    worker.run_partitions(iter(parts), job, lambda p, stats: reported.append((p, stats)))
    assert sorted(p.key for p, _ in reported) == sorted(p.key for p in parts)
    failed = [s for _, s in reported if s["failure"]]
    assert failed and all("engine fell over" in s["failure"] for s in failed)
    assert all(s["retry"] == s["n_rows"] == s["n_errors"] for s in failed)
    fine = [s for _, s in reported if not s["failure"]]
    assert fine and all(s["n_errors"] == 0 for s in fine)  # before and after the failure
    assert len(failed) <= 3  # only what the stream had taken when it failed
    assert "engine fell over" in (tmp_path / "s" / "errors.log").read_text()


def test_threaded_streams_give_every_item_one_result():
    """``cluster._threaded_streams``: task threads take items from one queue as they need
    them; each item's result comes back once, as it finishes; an item a task held when
    it raised gets the exception; with no task left, the rest are Stopped."""
    from astrocat.pipeline import cluster as cl

    def stream(items, scale, done):
        for item in items:
            if item == 7:
                raise ValueError("seven")
            done(item, item * scale)

    got = dict(cl._threaded_streams(stream, list(range(20)), (10,)))  # noqa: SLF001
    assert sorted(got) == list(range(20))
    assert isinstance(got[7], ValueError)
    assert all(got[i] == 10 * i for i in range(20) if i != 7)
    def greedy(items, done):  # each task takes one item and fails
        for item in items:
            raise ValueError(f"fails at {item}")
        del done

    got = dict(cl._threaded_streams(greedy, list(range(5)), ()))  # noqa: SLF001
    assert sorted(got) == list(range(5))
    failed = [v for v in got.values() if isinstance(v, ValueError)]
    assert len(failed) == cl.TASK_THREADS
    assert all(isinstance(v, cl.Stopped) for v in got.values() if v not in failed)


def test_a_cluster_task_streams_its_stretch_and_accounts_for_each_item():
    """``cluster._run_stretch``: a task's items' results in order, as its stream gave
    them; the stream's exception for those it gave none; Stopped raised, not returned."""
    import pytest

    from astrocat.pipeline import cluster as cl

    def stream(items, scale, done):
        for item in items:
            if item == "c":
                raise ValueError("c is bad")
            done(item, item * scale)

    assert cl._run_stretch(("a", "b"), stream, 2) == ["aa", "bb"]  # noqa: SLF001
    got = cl._run_stretch(("a", "b", "c", "d"), stream, 2)  # noqa: SLF001
    assert got[:2] == ["aa", "bb"] and all(isinstance(g, ValueError) for g in got[2:])

    def stopped(items, done):
        raise cl.Stopped("interrupted")

    with pytest.raises(cl.Stopped):
        cl._run_stretch(("a",), stopped)  # noqa: SLF001


def test_a_stream_does_not_hold_parts_back_for_a_batch_that_never_fills(tmp_path,
                                                                          monkeypatch):
    """Batches larger than the partitions (as for a model whose inputs are rare in the
    stream): once more than ``OPEN_PARTITIONS`` partitions wait for them, the batches go as
    they are, so parts are written as the stream goes, not all at its end."""
    from astrocat.pipeline import worker

    refs = _survey(tmp_path / "in", 240)
    parts = _parts(refs, 20)
    assert len(parts) >= 6
    job = _job(tmp_path, "s", decoders=2, engines=1, batch_size=1000)
    Path(job.parts_dir).mkdir()
    written, at_end = [], []
    real = worker._Batches.finish  # noqa: SLF001

    def finish(self):
        at_end.append(len(written))
        return real(self)

    monkeypatch.setattr(worker._Batches, "finish", finish)  # noqa: SLF001
    worker.run_partitions(iter(parts), job, lambda p, stats: written.append(p.key))
    assert sorted(written) == sorted(p.key for p in parts)
    assert at_end and at_end[0] > 0  # parts written before the stream's last batch


def test_a_long_stream_holds_only_the_partitions_in_flight(tmp_path, monkeypatch):
    """A written partition's rows are let go: however many partitions a stream takes,
    only those in flight stay in memory."""
    import gc
    import weakref

    from astrocat.pipeline import worker

    live: weakref.WeakSet = weakref.WeakSet()

    class Tracked(worker._Open):  # noqa: SLF001
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            live.add(self)

    monkeypatch.setattr(worker, "_Open", Tracked)
    refs = _survey(tmp_path / "in", 240)
    parts = _parts(refs, 20)
    job = _job(tmp_path, "s", decoders=2, engines=1, batch_size=8)
    Path(job.parts_dir).mkdir()
    most = []

    def done(p, stats):
        gc.collect()
        most.append(len(live))

    worker.run_partitions(iter(parts), job, done)
    assert len(most) == len(parts) >= 10 and min(most) >= 1  # the tracking works
    assert max(most) <= 6  # the part just written, and a few read ahead


def test_a_threaded_run_without_a_stream_takes_one_item_at_a_time():
    """``LazyCluster.completed`` with Dask's threaded scheduler and no stream: ``fn`` over
    each item (``cluster._one_by_one``), every item's result once, an exception as the
    result of the item that raised it."""
    import contextlib

    from astrocat.pipeline import cluster as cl

    def fn(item, scale):
        if item == 3:
            raise ValueError("three")
        return item * scale

    with contextlib.ExitStack() as stack:
        lazy = cl.LazyCluster(stack, None, None, in_process=True)
        assert lazy.threaded
        got = dict(lazy.completed(fn, list(range(8)), 10, key=str))
    assert sorted(got) == list(range(8)) and isinstance(got[3], ValueError)
    assert all(got[i] == 10 * i for i in range(8) if i != 3)
