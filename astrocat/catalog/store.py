"""A catalog store: immutable parts, and published versions that are small manifests
over them.

```
STORE/
  part-<key>.parquet        one per partition, written once, shared by every version
  segments/seg-<key>.parquet  compacted, conformed parts (the dataset layout's files)
  versions/000003/          a published version: _manifest.json, and the layout's view
  latest -> versions/000003 a symbolic link, moved in one atomic rename
```

A reader of ``latest`` (or of ``infer``'s ``--out``, itself such a link for the dataset
and HATS layouts) only ever sees one whole published version: a version directory is
complete before the link moves, and is never changed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from astrocat.catalog.writer import part_stats
from astrocat.kernels import drift

MANIFEST = "_manifest.json"
STORE_FILE = "catalog.parquet"  # the file layout's catalog inside a version
VERSIONS = "versions"
LATEST = "latest"
SEGMENTS = "segments"
HISTORY = "history.jsonl"  # one line per published version, kept after pruning


def point(link: Path, target: Path) -> None:
    """Make ``link`` a relative symbolic link to ``target``, replacing any old link in one
    atomic rename (readers see the old target or the new one, never neither)."""
    tmp = link.with_name(f".{link.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp)
    if link.is_dir() and not link.is_symlink():  # a store copied without its links
        shutil.rmtree(link)
    os.replace(tmp, link)


@dataclass(frozen=True)
class Store:
    root: Path

    @property
    def segments(self) -> Path:
        return self.root / SEGMENTS

    def part(self, key: str) -> Path:
        return self.root / f"part-{key}.parquet"

    def version_dir(self, number: int) -> Path:
        return self.root / VERSIONS / f"{number:06d}"

    def versions(self) -> list[int]:
        """Published version numbers, oldest first."""
        d = self.root / VERSIONS
        if not d.is_dir():
            return []
        return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())

    def latest(self) -> int | None:
        link = self.root / LATEST
        if not link.is_symlink():
            return None
        return int(Path(os.readlink(link)).name)

    def manifest(self, number: int) -> dict:
        return json.loads((self.version_dir(number) / MANIFEST).read_text())

    def retention(self) -> int | None:
        """How many versions the latest run kept (None: a store of astrocat < 0.2)."""
        latest = self.latest()
        try:
            return self.manifest(latest).get("retention") if latest is not None else None
        except (OSError, ValueError):
            return None

    def staging(self) -> tuple[int, Path]:
        """The next version's number and an empty directory to build it in."""
        number = max(self.versions(), default=0) + 1
        tmp = self.root / VERSIONS / f".{number:06d}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return number, tmp

    def publish(self, number: int, staged: Path, manifest: dict) -> Path:
        """Seal a staged version (manifest last) and move ``latest`` to it."""
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=1))
        final = self.version_dir(number)
        os.replace(staged, final)
        point(self.root / LATEST, final)
        with open(self.root / HISTORY, "a", encoding="utf-8") as f:  # one write per line
            f.write(json.dumps(_brief(manifest)) + "\n")
        return final

    def history(self) -> list[dict]:
        """Every published version, oldest first, marked ``kept`` and ``latest``."""
        path = self.root / HISTORY
        records = ([json.loads(line) for line in path.read_text().splitlines() if line.strip()]
                   if path.is_file() else [])
        kept, latest = set(self.versions()), self.latest()
        seen = {r.get("version") for r in records}
        records += [_brief(self.manifest(n)) for n in sorted(kept - seen)]
        for r in records:
            r["kept"], r["latest"] = r.get("version") in kept, r.get("version") == latest
        return sorted(records, key=lambda r: r.get("version") or 0)

    def prune_versions(self, keep: int) -> list[int]:
        """Remove all but the ``keep`` newest versions (never ``latest``); returns those
        removed. Their parts stay until no kept version names them (``prune_parts``)."""
        gone = self.versions()[:-keep] if keep > 0 else []
        latest = self.latest()
        for n in gone:
            if n != latest:
                shutil.rmtree(self.version_dir(n), ignore_errors=True)
        for tmp in (self.root / VERSIONS).glob(".*.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        return [n for n in gone if n != latest]

    def input_changes(self, old_parts: list[str], new_parts: list[str],
                      known: Mapping[str, Mapping] | None = None) -> dict[str, int]:
        """Inputs added, removed and changed between two versions' parts, from the parts'
        footers (or ``known``: statistics by part name the caller already holds): only
        parts in one version and not the other are looked at."""
        old, new = set(old_parts), set(new_parts)
        known = known or {}

        def inputs(names: set[str]) -> dict[str, tuple]:
            out: dict[str, tuple] = {}
            for name in names:
                path = self.root / name
                stats = known.get(name) or (part_stats(path) if path.is_file() else {})
                for source, *fingerprint in stats.get("inputs", []):
                    out[source] = tuple(fingerprint)
            return out

        before, after = inputs(old - new), inputs(new - old)
        return {"added": sum(1 for s in after if s not in before),
                "removed": sum(1 for s in before if s not in after),
                "changed": sum(1 for s, f in after.items() if s in before and before[s] != f)}

    def prune_parts(self, keep: set[str]) -> None:
        """Drop parts and segments that no kept version and no current plan names."""
        for v in self.versions():
            m = self.manifest(v)
            keep |= set(m.get("parts", [])) | set(m.get("segments", []))
        for p in self.root.glob("part-*.parquet"):
            if p.name not in keep:
                p.unlink(missing_ok=True)
        for p in self.segments.glob("seg-*.parquet"):
            if p.name not in keep:
                p.unlink(missing_ok=True)
        for p in [*self.root.glob(".part-*.tmp-*"), *self.segments.glob(".seg-*.tmp-*")]:
            p.unlink(missing_ok=True)


def _brief(manifest: dict) -> dict:
    """A manifest without its long lists (parts, workers, the drift records' sketches):
    what ``history`` shows."""
    out = {**{k: v for k, v in manifest.items() if k not in ("parts", "segments", "workers")},
           "n_parts": len(manifest.get("parts", []))}
    if isinstance(out.get("models"), dict):
        out["models"] = {n: _without_sketches(m) for n, m in out["models"].items()}
    return out


def _without_sketches(model: dict) -> dict:
    if not (isinstance(model, dict) and isinstance(model.get("drift"), dict)):
        return model
    return {**model, "drift": drift.brief(model["drift"])}
