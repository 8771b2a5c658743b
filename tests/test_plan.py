"""Partition planning: stable keys, content-defined boundaries, tables cut by rows."""

from dataclasses import replace

from astrocat.kinds import Kind
from astrocat.models.zoo import bundled
from astrocat.pipeline.plan import plan_partitions
from astrocat.sources.units import InputUnit


def _img(name: str) -> InputUnit:
    return InputUnit(path=f"/x/{name}", source=name, fmt="jpeg", kind=Kind.RGB_IMAGE,
                     size=100, mtime_ns=1)


def _routing():
    card = bundled()["cosmo-cnn"]  # any card: routing only needs name and fingerprint
    return {Kind.RGB_IMAGE: card, Kind.SPECTRUM: card}


def test_inserting_one_file_changes_few_partitions():
    names = [f"{i:06d}.jpg" for i in range(2000)]
    before = [p.key for p in plan_partitions(map(_img, names), _routing(), 32)]
    names.insert(1000, "001000a.jpg")
    after = [p.key for p in plan_partitions(map(_img, names), _routing(), 32)]
    changed = set(after) - set(before)
    assert 1 <= len(changed) <= 2
    assert len(before) > 20  # many partitions, so this is a real test


def test_partition_sizes_are_bounded_and_every_item_planned():
    names = [f"{i:06d}.jpg" for i in range(3000)]
    parts = list(plan_partitions(map(_img, names), _routing(), 50))
    assert sum(p.n_items for p in parts) == 3000
    assert max(p.n_items for p in parts) <= 100
    assert all(p.n_items >= 12 for p in parts[:-1])


def test_tables_are_cut_into_row_ranges_and_keys_track_changes():
    table = InputUnit(path="/x/s.parquet", source="s.parquet", fmt="parquet",
                      kind=Kind.SPECTRUM, n_items=1000, size=5, mtime_ns=1)
    parts = list(plan_partitions([table], _routing(), 16))  # 16 x 16 = 256 rows each
    assert [(p.slices[0].start, p.slices[0].stop) for p in parts] == [
        (0, 256), (256, 512), (512, 768), (768, 1000)]
    touched = replace(table, mtime_ns=2)  # the file was rewritten: every part is new
    again = list(plan_partitions([touched], _routing(), 16))
    assert not {p.key for p in parts} & {p.key for p in again}


def test_unusable_inputs_are_planned_as_single_error_items():
    bad = InputUnit(path="/x/b", source="b", fmt="unknown", kind=None, n_items=0,
                    error="empty file")
    (part,) = plan_partitions([bad], _routing(), 16)
    assert part.n_items == 1 and part.slices[0].model is None
    assert part.slices[0].problem == "empty file"


def test_a_failed_partition_still_accounts_for_every_item(tmp_path):
    import pyarrow.parquet as pq

    from astrocat.pipeline.worker import Job, write_failed_partition

    routing = _routing()
    table = InputUnit(path="/x/s.parquet", source="s.parquet", fmt="parquet",
                      kind=Kind.SPECTRUM, n_items=40, size=5, mtime_ns=1)
    parts = list(plan_partitions([_img("a.jpg"), table], routing, 2))
    card = routing[Kind.RGB_IMAGE]
    job = Job(cards={card.name: card}, engines={card.name: "onnxruntime"},
              parts_dir=str(tmp_path), output_order=(card.name,))
    stats = [write_failed_partition(p, job, "worker died; re-run to retry") for p in parts]
    assert sum(s["n_rows"] for s in stats) == 41 and all(s["n_errors"] == s["n_rows"]
                                                         for s in stats)
    rows = [r for p in tmp_path.glob("part-*.parquet") for r in pq.read_table(p).to_pylist()]
    assert sorted(r["row"] for r in rows if r["source"] == "s.parquet") == list(range(40))
    assert {r["status"] for r in rows} == {"error"}
