"""Strong-lens finding (seed 004, the Bologna Lens Finding Challenge): candidates above a
threshold, ranked by the network's logit where the catalog has one (``p_lens`` saturates at
exactly 1 in float32, so many candidates would tie), and with the challenge's labels
AUROC, TPR0, TPR10, the confusion matrix, completeness and purity against threshold and
the reliability of p_lens (ECE).
"""

from __future__ import annotations

import math

import click
import numpy as np
import pyarrow as pa

from astrocat.science import stats, trust
from astrocat.science.base import (
    CompareContext,
    Context,
    Joined,
    TaskOption,
    Truth,
    TruthLayout,
    values,
)
from astrocat.science.drawing import (
    PALETTE,
    FigureOut,
    Images,
    mosaic,
    new_figure,
    png,
    reliability_figure,
)
from astrocat.science.render import Section, Table, calibration_items, num
from astrocat.science.streaming import TopK

KEY = "lens"
LENS_RATE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(21))
LENS_THUMB = 202  # a 101 x 101 cut-out at 2x, nearest-neighbour
LOGIT = "p_lens_logit"  # the network's pre-sigmoid value: strict order where p_lens is 1
#: Thresholds of the completeness/purity table (the chosen threshold is added).
COMPLETENESS_THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
RELIABILITY_BINNING = "share of true lenses per bin of p_lens"
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
    """Every finite p_lens (float32), its truth key, and a running top list of candidates
    (ranked by the logit where there is one; flagged out-of-domain ones left out)."""

    def __init__(self, ctx: Context) -> None:
        self.logit = LOGIT in ctx.names
        self.domain = trust.Domain(ctx)
        self.columns = (["p_lens", *([LOGIT] if self.logit else []), *self.domain.columns]
                        if "p_lens" in ctx.names else [])
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
        above = above[self.domain.keep(self.domain.flags(batch)[above])]
        self.n_cands += len(above)
        if len(above):
            take = pa.array(above)
            key = rank_key(p[above], values(batch, LOGIT)[above] if self.logit else None)
            self.cands.update(key[:, None], p[above, None], oid.take(take),
                              batch.column("source").take(take) if self.images
                              else oid.take(take))

    def finish(self) -> tuple[dict, dict] | None:
        if not self.p:
            if self.truth is not None:
                self.truth.note_unused(self.notes, "no p_lens column")
            return None
        keys = np.concatenate(self.keys) if self.truth is not None else None
        out, data = _numbers(np.concatenate(self.p), keys, self.cands, self.n_cands,
                             self.threshold, self.truth, self.notes, self.logit)
        if (ood := self.domain.report()) is not None:
            out["ood"] = ood
        return out, data


def start(ctx: Context) -> _Accumulator:
    return _Accumulator(ctx)


def rank_key(p: np.ndarray, logit: np.ndarray | None) -> np.ndarray:
    """What candidates are ranked by: the logit where the catalog has one (finite), else
    the log-odds of p_lens (the same order as p_lens, ties included)."""
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.clip(np.log(p) - np.log1p(-p), -1e3, 1e3)
    if logit is None:
        return odds
    lg = np.asarray(logit, np.float64)
    return np.where(np.isfinite(lg), lg, odds)


def _numbers(p: np.ndarray, keys: np.ndarray | None, cands: TopK, n_cands: int,
             threshold: float, ltruth: Truth | None, notes: list[str],
             logit: bool = False) -> tuple[dict, dict]:
    entries = cands.column(0, key=LOGIT if logit else None)
    cand = [{"object_id": c["object_id"], "p_lens": c["score"],
             **({LOGIT: c[LOGIT]} if logit else {})} for c in entries]
    out: dict = {"n": len(p), "threshold": threshold, "n_candidates": n_cands,
                 "ranked_by": LOGIT if logit else "p_lens", "candidates": cand,
                 "p_lens_percentiles": dict(zip(["p5", "p50", "p95"],
                                                map(float, np.percentile(p, [5, 50, 95]))
                                                if len(p) else [math.nan] * 3, strict=True))}
    data: dict = {"p": p, "labels": None, "threshold": threshold, "candidates": entries,
                  "ranked_by": out["ranked_by"]}
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
    cp_t = sorted(set(COMPLETENESS_THRESHOLDS) | {round(float(threshold), 4)})
    comp, pur, n_sel = stats.completeness_purity(s, y, np.array(cp_t))
    rel = stats.reliability(s, y)
    out["truth"] = {
        "file": str(ltruth.path), "n_matched": int(hit.sum()),
        "n_catalog_without_truth": int((~hit).sum()),
        "n_lenses": lm.n_lenses, "n_nonlenses": lm.n_nonlenses,
        "auroc": lm.auroc, "tpr0": lm.tpr0, "tpr10": lm.tpr10,
        "confusion": stats.confusion(s, y, threshold),
        "rates_by_threshold": [{"threshold": t, "tpr": float(a), "tnr": float(b)}
                               for t, a, b in zip(LENS_RATE_THRESHOLDS, tpr, tnr, strict=True)],
        "completeness_purity": [{"threshold": t, "selected": int(k), "completeness": float(c),
                                 "purity": float(q)}
                                for t, k, c, q in zip(cp_t, n_sel, comp, pur, strict=True)],
        "calibration": stats.calibration_report(rel, RELIABILITY_BINNING),
    }
    data.update(p=s, p_all=p, labels=y, metrics=out["truth"], reliability=rel)
    return out, data


def section(lens: dict) -> Section:
    """The terminal/HTML section."""
    s = Section("lens", f"Lens finding: {lens['n']} cut-outs")
    s.items.append(f"{lens['n_candidates']} candidates with p_lens >= {lens['threshold']}")
    above = f"p_lens >= {lens['threshold']}"
    if line := trust.sentence(lens.get("ood"), (f"cut-out with {above}", f"cut-outs with {above}"),
                              "the candidates"):
        s.items.append(line)
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
        if cp := t.get("completeness_purity"):
            s.items.append(Table(
                "Completeness and purity of p_lens >= threshold (all matched cut-outs)",
                ["threshold", "selected", "completeness", "purity"],
                [[f"{r['threshold']:g}", str(r["selected"]), num(r["completeness"], ".3f"),
                  num(r["purity"], ".3f")] for r in cp]))
        if c := t.get("calibration"):
            s.items += calibration_items(c, "lens score p_lens", "lens share")
    if lens["candidates"]:
        has_t = any("is_lens" in c for c in lens["candidates"])
        has_logit = lens.get("ranked_by") == LOGIT
        cols = (["rank", "object_id", "p_lens"] + (["logit"] if has_logit else [])
                + (["true lens?"] if has_t else []))
        s.items.append(Table(
            f"Top {len(lens['candidates'])} of {lens['n_candidates']} candidates, by "
            f"{lens.get('ranked_by', 'p_lens')}",
            cols, [[str(i + 1), c["object_id"], num(c["p_lens"])]
                   + ([num(c.get(LOGIT), ".3f")] if has_logit else [])
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
            FigureOut("lens_completeness_purity", "lens", "Completeness and purity of the "
                      "candidates against threshold", _lens_completeness(d, r)),
            FigureOut("lens_reliability", "lens", "Reliability of p_lens with the expected "
                      "calibration error",
                      reliability_figure(d["reliability"], "predicted p_lens",
                                         "share of true lenses", "Lens score p_lens")),
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


def _lens_completeness(d: dict, r: dict) -> bytes:
    t = np.linspace(0, 1, 201)
    comp, pur, _ = stats.completeness_purity(d["p"], d["labels"], t)
    fig = new_figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(t, comp, color=PALETTE.true, label="completeness (lenses found / all lenses)")
    ax.plot(t, pur, color=PALETTE.pred, label="purity (lenses / cut-outs selected)")
    table = r["truth"]["completeness_purity"]
    ax.plot([x["threshold"] for x in table], [x["completeness"] for x in table], "o",
            color=PALETTE.true)
    ax.plot([x["threshold"] for x in table], [x["purity"] for x in table], "s",
            color=PALETTE.pred)
    ax.axvline(r["threshold"], color="k", ls=":", lw=1, label=f"threshold {r['threshold']}")
    ax.set_xlabel("threshold on p_lens (selected: p_lens >= threshold)")
    ax.set_ylabel("fraction")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Completeness and purity against threshold ({r['truth']['n_lenses']} "
                 f"lenses, {r['truth']['n_nonlenses']} non-lenses)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
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
    by_logit = r.get("ranked_by") == LOGIT
    flat = [(thumb(c["source"]), f"{c['object_id'].rsplit('-', 1)[-1]}  {c['score']:.3f}"
             + (f" ({c[LOGIT]:.1f})" if by_logit else "") + mark[c.get("is_lens")])
            for c in cands]
    what = "score (logit)" if by_logit else "score"
    return mosaic([flat[i:i + 6] for i in range(0, len(flat), 6)],
                   f"Top {len(cands)} lens candidates by {r.get('ranked_by', 'p_lens')}\n"
                   f"(ID, {what}, truth if known; asinh stretch between the 1st and 99.5th "
                   "percentile)", LENS_THUMB, font=8)


# --------------------------------------------------------------------------- comparison


class _Comparison:
    """Lens candidates gained and lost at the threshold between two versions (of the
    cut-outs neither version leaves out as out-of-domain)."""

    def __init__(self, ctx: CompareContext) -> None:
        here = "p_lens" in ctx.names_a and "p_lens" in ctx.names_b
        self.ctx = ctx
        self.columns = ["p_lens", "object_id", *trust.compare_columns(ctx)] if here else []
        self.threshold = ctx.options["lens_threshold"]
        self.gained, self.lost = TopK(ctx.examples, 1), TopK(ctx.examples, 1)
        self.n = {"gained": 0, "lost": 0, "new_inputs": 0, "removed_inputs": 0}

    def update(self, j: Joined) -> None:
        pa_, pb = j.a("p_lens"), j.b("p_lens")
        with np.errstate(invalid="ignore"):
            ca = (pa_ >= self.threshold) & trust.joined_keep(j, "a", self.ctx)
            cb = (pb >= self.threshold) & trust.joined_keep(j, "b", self.ctx)
        both = (j.ok_in_both() & trust.joined_keep(j, "a", self.ctx)
                & trust.joined_keep(j, "b", self.ctx))
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
        if "ood" in a or "ood" in b:
            out["ood_left_out"] = {v: (x.get("ood") or {}).get("left_out")
                                   for v, x in (("a", a), ("b", b))}
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
    if ood := c.get("ood_left_out"):
        s.items.append("Flagged out-of-domain cut-outs above the threshold left out of the "
                       f"candidates: {num(ood['a'], 'd')} in A, {num(ood['b'], 'd')} in B "
                       "(--include-ood keeps them).")
    for what in ("gained", "lost"):
        if c[f"examples_{what}"]:
            s.items.append(f"{what.capitalize()} (largest p_lens first): "
                           + ", ".join(c[f"examples_{what}"]))
    if "metrics" in c:
        s.items.append(Table("Against the labels", ["metric", "A", "B", "change"],
                             [[k.upper(), num(m["a"], ".3f"), num(m["b"], ".3f"),
                               num(m["change"], "+.3f")] for k, m in c["metrics"].items()]))
    return s
