"""``benchmarks.gpu_check`` in its CPU-only dry run, so the GPU check cannot rot where no
GPU is: both reports written, every step with a valid status, no GPU figure anywhere;
and ``--pack``'s budget and manifest with a fake download (no network)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_writes_both_reports_and_no_gpu_figure(tmp_path):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--out",
                        str(out), "--work", str(tmp_path / "work"), "--budget-s", "120"],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert seconds < 40, seconds
    report = json.loads((out / "gpu_check.json").read_text())
    md = (out / "gpu_check.md").read_text()
    assert report["dry_run"] is True
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == list(gpu_check.STEPS)
    for name, s in steps.items():
        assert s["status"] in gpu_check.STATUSES, s
        assert s["status"] != "failed", s
        assert s["gpu_figure"] is False, s
        assert s["measures"] == gpu_check.WHAT[name]
        if name in gpu_check.GPU_STEPS:
            assert s["status"] == "dry-run", s  # described, never measured as a GPU figure
            assert s.get("result", {}).get("device", gpu_check.CPU_LABEL) == gpu_check.CPU_LABEL
    assert steps["environment"]["status"] == "ok"
    assert steps["data"]["result"]["jpegs"] == gpu_check.DRY_N
    cpu = steps["end_to_end"]["result"]["cpu"]  # the CPU path runs, tiny
    assert cpu["rows"] == gpu_check.DRY_N and cpu["error_rows"] == 0
    assert "gpu" not in steps["end_to_end"]["result"]
    assert md.startswith(f"**{gpu_check.DRY_BANNER}**")
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert [ln.split("|")[1].strip() for ln in rows] == list(gpu_check.STEPS)
    for name in gpu_check.GPU_STEPS:
        assert f"would measure: {gpu_check.WHAT[name]}" in md


def test_pack_keeps_within_budget_and_says_what_was_left_out(tmp_path):
    sizes = {"a": 3, "big": 10, "b": 4, "broken": None, "c": 2}  # MiB

    def fake_download(req: str, dest: Path) -> Path:
        name = req.split("==")[0]
        if sizes[name] is None:
            raise RuntimeError("no matching distribution")
        wheel = dest / f"{name}-1.0-py3-none-any.whl"
        wheel.write_bytes(b"\0" * (sizes[name] << 20))
        return wheel

    got = gpu_check.pack(tmp_path / "w", budget_mib=9.5, names=tuple(sizes),
                         download=fake_download)
    assert [n for n, _ in got["kept"]] == ["a-1.0-py3-none-any.whl",
                                           "b-1.0-py3-none-any.whl",
                                           "c-1.0-py3-none-any.whl"]
    assert got["total"] == 9 << 20
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == [
        "MANIFEST.txt", "a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl",
        "c-1.0-py3-none-any.whl"]  # no staging folder left behind
    manifest = (tmp_path / "w" / "MANIFEST.txt").read_text()
    inside, outside = manifest.split("## left out")
    assert "a-1.0" in inside and "big" not in inside
    assert "big-1.0-py3-none-any.whl  10.0 MiB would take the total past the 9.5 MiB" in outside
    assert "broken  not downloaded (no matching distribution)" in outside
    assert "9.0 MiB of a 9.5 MiB budget" in manifest


def test_install_wheels_leaves_installed_packages_alone(tmp_path, monkeypatch):
    import zipfile

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("numpy-0.0.1", "gpu_check_fake_pkg-1.0"):
        with zipfile.ZipFile(wheels / f"{name}-py3-none-any.whl", "w") as z:
            z.writestr("gpu_check_fake_pkg/__init__.py", "X = 1\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    got = gpu_check.install_wheels(wheels, tmp_path / "site")
    assert got["already_here"] == ["numpy-0.0.1-py3-none-any.whl"]
    assert got["installed"] == ["gpu_check_fake_pkg-1.0-py3-none-any.whl"]
    assert (tmp_path / "site" / "gpu_check_fake_pkg" / "__init__.py").is_file()
