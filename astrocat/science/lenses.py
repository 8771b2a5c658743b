"""Strong-lens finding (seed 004, the Bologna Lens Finding Challenge): candidates above a
threshold, and with the challenge's labels AUROC, TPR0, TPR10, the confusion matrix.
"""

from __future__ import annotations

import math

import click
import numpy as np
import pyarrow as pa

from astrocat.science import stats
from astrocat.science.base import CompareContext, Context, Joined, TaskOption, values
from astrocat.science.figures import PALETTE, FigureOut, Images, mosaic, new_figure, png
from astrocat.science.render import Section, Table, num
from astrocat.science.streaming import TopK
from astrocat.science.truth import Truth, TruthLayout

KEY = "lens"
LENS_RATE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(21))
LENS_THUMB = 202  # a 101 x 101 cut-out at 2x, nearest-neighbour
OPTIONS = (
    TaskOption("lens_threshold", 0.5, "Lens candidate when p_lens >= this (also the "
               "confusion matrix's).", click.FloatRange(0, 1)),
    TaskOption("top", 20, "Lens candidates to list.", click.IntRange(min=0)),
)
#: The Bologna Lens Finding Challenge's labels: ``ID, is_lens, ...``, joined on the
#: trailing integer of ``object_id`` (``imageEUC_VIS-200001`` -> 200001).
TRUTH = TruthLayout(
    task=KEY, signature=frozenset({"ID", "is_lens"}), id_column="ID", columns=("is_lens",),
    optional=("Einstein_area", "numb_pix_lensed_image", "flux_lensed_image_in_sigma"),
    hint="ID,is_lens,... for lenses", label="lens challenge", noun="lens cut-out")


class _Accumulator:
    """Every finite p_lens (float32), its truth key, and a running top list of candidates."""

    def __init__(self, ctx: Context) -> None:
        self.columns = ["p_lens"] if "p_lens" in ctx.names else []
        self.threshold = ctx.options["lens_threshold"]
        self.truth, self.notes, self.images = ctx.truth, ctx.notes, ctx.images
        self.p: list[np.ndarray] = []
        self.keys: list[np.ndarray] = []
        self.cands = TopK(ctx.options["top"], 1)
        self.n_cands = 0

    def update(self, batch: pa.RecordBatch, ok: np.ndarray) -> None:
        oid = batch.column("object_id")
        p = values(batch, "p_lens")
        sel = np.flatnonzero(ok & np.isfinite(p))
        self.p.append(p[sel].astype(np.float32))
        if self.truth is not None:
            self.keys.append(self.truth.keys(oid.take(pa.array(sel))))
        above = sel[p[sel] >= self.threshold]
        self.n_cands += len(above)
        if len(above):
            take = pa.array(above)
            self.cands.update(p[above, None], p[above, None], oid.take(take),
                              batch.column("source").take(take) if self.images
                              else oid.take(take))

    def finish(self) -> tuple[dict, dict] | None:
        if not self.p:
            if self.truth is not None:
                self.truth.note_unused(self.notes, "no p_lens column")
            return None
        keys = np.concatenate(self.keys) if self.truth is not None else None
        return _numbers(np.concatenate(self.p), keys, self.cands, self.n_cands, self.threshold,
                        self.truth, self.notes)


def start(ctx: Context) -> _Accumulator:
    return _Accumulator(ctx)


def _numbers(p: np.ndarray, keys: np.ndarray | None, cands: TopK, n_cands: int,
             threshold: float, ltruth: Truth | None, notes: list[str]) -> tuple[dict, dict]:
    cand = [{"object_id": c["object_id"], "p_lens": c["score"]} for c in cands.column(0)]
    out: dict = {"n": len(p), "threshold": threshold, "n_candidates": n_cands,
                 "candidates": cand,
                 "p_lens_percentiles": dict(zip(["p5", "p50", "p95"],
                                                map(float, np.percentile(p, [5, 50, 95]))
                                                if len(p) else [math.nan] * 3, strict=True))}
    data: dict = {"p": p, "labels": None, "threshold": threshold,
                  "candidates": cands.column(0)}
    rows = None if ltruth is None else ltruth.match(keys, notes)
    if rows is None:
        return out, data
    hit = rows >= 0
    s, y = p[hit], ltruth.column("is_lens")[rows[hit]] > 0.5
    lm = stats.lens_metrics(s, y)
    lookup = ltruth.lookup(ltruth.keys(pa.array([c["object_id"] for c in cand], pa.string())))
    for c, d, r in zip(cand, data["candidates"], lookup, strict=True):
        c["is_lens"] = d["is_lens"] = None if r < 0 else bool(ltruth.column("is_lens")[r] > 0.5)
    tpr, tnr = stats.rates_by_threshold(s, y, np.array(LENS_RATE_THRESHOLDS))
    out["truth"] = {
        "file": str(ltruth.path), "n_matched": int(hit.sum()),
        "n_catalog_without_truth": int((~hit).sum()),
        "n_lenses": lm.n_lenses, "n_nonlenses": lm.n_nonlenses,
        "auroc": lm.auroc, "tpr0": lm.tpr0, "tpr10": lm.tpr10,
        "confusion": stats.confusion(s, y, threshold),
        "rates_by_threshold": [{"threshold": t, "tpr": float(a), "tnr": float(b)}
                               for t, a, b in zip(LENS_RATE_THRESHOLDS, tpr, tnr, strict=True)],
    }
    data.update(p=s, p_all=p, labels=y, metrics=out["truth"])
    return out, data


def section(lens: dict) -> Section:
    """The terminal/HTML section."""
    s = Section("lens", f"Lens finding: {lens['n']} cut-outs")
    s.items.append(f"{lens['n_candidates']} candidates with p_lens >= {lens['threshold']}")
    t = lens.get("truth")
    if t:
        s.items.append(
            f"Against {t['file']} ({t['n_matched']} matched on ID: {t['n_lenses']} lenses, "
            f"{t['n_nonlenses']} non-lenses): AUROC {num(t['auroc'], '.3f')}, TPR0 "
            f"{num(t['tpr0'], '.3f')}, TPR10 {num(t['tpr10'], '.3f')} (Metcalf et al. 2019; "
            "best space-based entries AUROC 0.93)")
        c = t["confusion"]
        s.items.append(Table(
            f"Confusion matrix at p_lens >= {c['threshold']}",
            ["", "predicted lens", "predicted non-lens", "rate"],
            [["lens", str(c["tp"]), str(c["fn"]), f"TPR {num(c['tpr'], '.3f')}"],
             ["non-lens", str(c["fp"]), str(c["tn"]), f"TNR {num(c['tnr'], '.3f')}"]]))
        s.items.append(Table("TPR and TNR against threshold (seed 004)",
                             ["threshold", "TPR", "TNR"],
                             [[f"{r['threshold']:.2f}", num(r["tpr"], ".3f"),
                               num(r["tnr"], ".3f")]
                              for r in t["rates_by_threshold"][::2]]))
    if lens["candidates"]:
        has_t = any("is_lens" in c for c in lens["candidates"])
        cols = ["rank", "object_id", "p_lens"] + (["true lens?"] if has_t else [])
        s.items.append(Table(
            f"Top {len(lens['candidates'])} of {lens['n_candidates']} candidates, by p_lens",
            cols, [[str(i + 1), c["object_id"], num(c["p_lens"])]
                   + ([{True: "yes", False: "no", None: "?"}[c.get("is_lens")]]
                      if has_t else [])
                   for i, c in enumerate(lens["candidates"])]))
    return s


# --------------------------------------------------------------------------- figures


def figures(d: dict, r: dict, images: Images) -> list[FigureOut]:
    """Seed 004's figures: scores, ROC with TPR0/TPR10, rates, confusion, candidates."""
    out = [FigureOut("lens_scores", "lens", "Distribution of p_lens", _lens_hist(d, r))]
    if d.get("labels") is not None:
        t = r["truth"]
        out += [
            FigureOut("lens_roc", "lens", "ROC curve, and TPR against the number of false "
                      "positives (AUROC, TPR0, TPR10)", _lens_roc(d["p"], d["labels"], t)),
            FigureOut("lens_rates", "lens", "TPR and TNR against threshold (seed 004)",
                      _lens_rates(d["p"], d["labels"], r["threshold"])),
            FigureOut("lens_confusion", "lens", f"Confusion matrix at p_lens >= "
                      f"{r['threshold']}", _lens_confusion(t["confusion"])),
        ]
    cands = d.get("candidates") or []
    if cands and images.reachable([c["source"] for c in cands]):
        out.append(FigureOut("lens_candidates", "lens", "Top lens candidates",
                             _lensmosaic(cands, r, images)))
    return out


def _lens_hist(d: dict, r: dict) -> bytes:
    edges = np.linspace(0, 1, 41)
    fig = new_figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    if d.get("labels") is not None:
        y = d["labels"]
        ax.hist(d["p"][y], edges, histtype="step", lw=1.5, color=PALETTE.true,
                label=f"true lenses ({int(y.sum())})")
        ax.hist(d["p"][~y], edges, histtype="step", lw=1.5, color=PALETTE.pred,
                label=f"true non-lenses ({int((~y).sum())})")
    else:
        ax.hist(d["p"], edges, histtype="step", lw=1.5, color=PALETTE.pred,
                label=f"all cut-outs ({len(d['p'])})")
    ax.axvline(r["threshold"], color="k", ls=":", lw=1,
               label=f"threshold {r['threshold']} ({r['n_candidates']} candidates)")
    ax.set_xlabel("lens score p_lens")
    ax.set_ylabel("cut-outs per 0.025 in p_lens")
    ax.set_title("Lens scores")
    ax.legend()
    ax.grid(alpha=0.3)
    return png(fig)


def _lens_roc(p: np.ndarray, y: np.ndarray, t: dict) -> bytes:
    fpr, tpr, _ = stats.roc_curve(p, y)
    n_neg = t["n_nonlenses"]
    fig = new_figure(figsize=(11, 4.8), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    a1.plot(fpr, tpr, color=PALETTE.pred, label=f"model, AUROC = {t['auroc']:.3f}")
    a1.plot([0, 1], [0, 1], "--", color=PALETTE.base, label="chance (0.5)")
    a1.set_xlabel("false-positive rate (non-lenses above threshold)")
    a1.set_ylabel("true-positive rate (lenses above threshold)")
    a1.set_title(f"ROC curve ({t['n_lenses']} lenses, {n_neg} non-lenses)")
    a1.set_aspect("equal")
    a1.legend(loc="lower right")
    fp = np.rint(fpr * n_neg)
    a2.step(fp + 1, tpr, where="post", color=PALETTE.pred)
    a2.set_xscale("log")
    a2.axvline(1, color="k", ls=":", lw=0.8)
    a2.axvline(10, color="k", ls="--", lw=0.8)
    a2.plot([1], [t["tpr0"]], "o", color=PALETTE.true,
            label=f"TPR0 = {t['tpr0']:.3f} (before the first false positive)")
    a2.plot([10], [t["tpr10"]], "s", color=PALETTE.true,
            label=f"TPR10 = {t['tpr10']:.3f} (fewer than 10 false positives)")
    a2.set_xlabel("false positives + 1 (log)")
    a2.set_ylabel("true-positive rate")
    a2.set_title("TPR against false positives (Metcalf et al. 2019)")
    a2.legend(loc="best")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
    return png(fig)


def _lens_rates(p: np.ndarray, y: np.ndarray, thr: float) -> bytes:
    t = np.linspace(0, 1, 201)
    tpr, tnr = stats.rates_by_threshold(p, y, t)
    fig = new_figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(t, tpr, color=PALETTE.true, label="TPR (lenses found)")
    ax.plot(t, tnr, color=PALETTE.pred, label="TNR (non-lenses rejected)")
    ax.axvline(thr, color="k", ls=":", lw=1, label=f"threshold {thr}")
    ax.set_xlabel("threshold on p_lens")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("True-positive and true-negative rates against threshold")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    ax.grid(alpha=0.3)
    return png(fig)


def _lens_confusion(c: dict) -> bytes:
    m = np.array([[c["tp"], c["fn"]], [c["fp"], c["tn"]]])
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
    fig = new_figure(figsize=(5.4, 4.4), layout="constrained")
    ax = fig.subplots()
    # coloured by the share of the true class, so that unbalanced classes read alike
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, f"{v}\n({100 * frac[i, j]:.1f}% of true class)", ha="center",
                va="center", color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks([0, 1], ["predicted lens", "predicted non-lens"])
    ax.set_yticks([0, 1], ["true lens", "true non-lens"])
    ax.set_title(f"Confusion matrix at p_lens >= {c['threshold']}\nTPR {c['tpr']:.3f}, "
                 f"TNR {c['tnr']:.3f}")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    return png(fig)


def _lensmosaic(cands: list[dict], r: dict, images: Images) -> bytes:
    from PIL import Image

    def thumb(source: str) -> np.ndarray | None:
        plane = images.plane(source)
        if plane is None:
            return None
        im = Image.fromarray((255 * plane).astype(np.uint8))
        return np.asarray(im.resize((LENS_THUMB, LENS_THUMB), Image.Resampling.NEAREST))

    cands = cands[:12]
    mark = {True: " lens", False: " NOT lens", None: ""}
    flat = [(thumb(c["source"]), f"{c['object_id'].rsplit('-', 1)[-1]}  {c['score']:.3f}"
             f"{mark[c.get('is_lens')]}") for c in cands]
    return mosaic([flat[i:i + 6] for i in range(0, len(flat), 6)],
                   f"Top {len(cands)} lens candidates by p_lens\n(ID, score, truth if known; "
                   "asinh stretch between the 1st and 99.5th percentile)", LENS_THUMB, font=8)


# --------------------------------------------------------------------------- comparison


class _Comparison:
    """Lens candidates gained and lost at the threshold between two versions."""

    def __init__(self, ctx: CompareContext) -> None:
        here = "p_lens" in ctx.names_a and "p_lens" in ctx.names_b
        self.columns = ["p_lens", "object_id"] if here else []
        self.threshold = ctx.options["lens_threshold"]
        self.gained, self.lost = TopK(ctx.examples, 1), TopK(ctx.examples, 1)
        self.n = {"gained": 0, "lost": 0, "new_inputs": 0, "removed_inputs": 0}

    def update(self, j: Joined) -> None:
        pa_, pb = j.a("p_lens"), j.b("p_lens")
        with np.errstate(invalid="ignore"):
            ca, cb = pa_ >= self.threshold, pb >= self.threshold
        both = j.ok_in_both()
        in_a, in_b = j.in_a, j.in_b
        gained, lost = both & cb & ~ca, both & ca & ~cb
        self.n["gained"] += int(gained.sum())
        self.n["lost"] += int(lost.sum())
        self.n["new_inputs"] += int((cb & in_b & ~in_a).sum())
        self.n["removed_inputs"] += int((ca & in_a & ~in_b).sum())
        for mask, top, side, score in ((gained, self.gained, "b", pb),
                                       (lost, self.lost, "a", pa_)):
            sel = np.flatnonzero(mask)
            if len(sel):
                oid = j.column(side, "object_id").take(pa.array(sel))
                top.update(score[sel, None], score[sel, None], oid, oid)

    def finish(self, a: dict | None, b: dict | None) -> dict | None:
        if not (a and b):
            return None
        out = {"threshold": self.threshold, "candidates_a": a["n_candidates"],
               "candidates_b": b["n_candidates"], **self.n,
               "examples_gained": [e["object_id"] for e in self.gained.column(0)],
               "examples_lost": [e["object_id"] for e in self.lost.column(0)]}
        if "truth" in a and "truth" in b:
            out["metrics"] = {k: {"a": a["truth"][k], "b": b["truth"][k],
                                  "change": b["truth"][k] - a["truth"][k]}
                              for k in ("auroc", "tpr0", "tpr10")}
        return out


def compare(ctx: CompareContext) -> _Comparison:
    return _Comparison(ctx)


def compare_section(c: dict) -> Section:
    """The comparison's terminal/HTML section."""
    s = Section("lens", "Lens finding, A against B")
    s.items.append(
        f"Candidates with p_lens >= {c['threshold']}: {c['candidates_a']} in A, "
        f"{c['candidates_b']} in B. Of the cut-outs in both, {c['gained']} became candidates "
        f"and {c['lost']} stopped being candidates; {c['new_inputs']} candidates are new "
        f"inputs, {c['removed_inputs']} were removed inputs.")
    for what in ("gained", "lost"):
        if c[f"examples_{what}"]:
            s.items.append(f"{what.capitalize()} (largest p_lens first): "
                           + ", ".join(c[f"examples_{what}"]))
    if "metrics" in c:
        s.items.append(Table("Against the labels", ["metric", "A", "B", "change"],
                             [[k.upper(), num(m["a"], ".3f"), num(m["b"], ".3f"),
                               num(m["change"], "+.3f")] for k, m in c["metrics"].items()]))
    return s
