"""The faces of a summary: the report as sections of text lines and tables.

``sections`` turns the report dict into plain tables once; the terminal (rich, here) and
the HTML page (``report.py``) both draw those, so the two never disagree on a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table as RichTable


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    text_columns: tuple[int, ...] = (0,)  # left-aligned; the others are numbers


@dataclass
class Section:
    key: str  # report key ("overview", "morphology", ...); figures are grouped by it
    title: str
    items: list[str | Table] = field(default_factory=list)


def _f(x: float | None, fmt: str = ".4f") -> str:
    return "-" if x is None or x != x else format(x, fmt)


def _pct(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None or x != x else format(100 * x, fmt) + "%"


def sections(report: dict) -> list[Section]:
    """Everything a reader sees, in reading order; only sections the catalog has."""
    out = [_overview(report)]
    for key, fn in (("morphology", _morphology), ("redshift", _redshift), ("lens", _lens),
                    ("cosmology", _cosmology)):
        if key in report:
            out.append(fn(report[key]))
    if report.get("notes"):
        out.append(Section("notes", "Notes", list(report["notes"])))
    return out


def _overview(r: dict) -> Section:
    s = Section("overview", "Catalog", [
        f"{r['catalog']}: {r['rows']} rows, {r['ok']} ok, {r['errors']} errors"])
    s.items.append(Table("Rows by kind and status", ["kind", "ok", "error"], [
        [kind, str(by.get("ok", 0)), str(by.get("error", 0))]
        for kind, by in r["by_kind"].items()]))
    if r.get("error_reasons"):
        s.items.append(Table("Most common errors", ["rows", "reason"],
                             [[str(n), reason] for reason, n in r["error_reasons"].items()],
                             text_columns=(1,)))
    if r.get("truth_files"):
        s.items.append("Truth: " + "; ".join(f"{k} from {v}"
                                             for k, v in r["truth_files"].items()))
    return s


def _morphology(m: dict) -> Section:
    s = Section("morphology", f"Morphology: {m['n']} galaxies (Galaxy Zoo 2 answers)")
    q1 = ", ".join(f"{c.removeprefix('gz_')} {_f(v, '.3f')}"
                   for c, v in m["mean_vote_fraction"].items())
    s.items.append(f"Question 1 mean vote fractions: {q1}")
    t = m.get("truth")
    if t:
        s.items.append(
            f"Against {t['file']} ({t['n_matched']} galaxies matched on GalaxyID, "
            f"{t['n_catalog_without_truth']} without truth): RMSE over all answers "
            f"{_f(t['rmse'])} vs {_f(t['rmse_baseline_mean'])} predicting the mean, "
            f"{_f(t['rmse_baseline_zeros'])} predicting zeros (Kaggle all-zeros 0.2716, "
            f"winner 0.0749). ROC AUC ({t['auc_positive_rule']} is positive): median "
            f"{_f(t['auc_median'], '.3f')}, {t['auc_at_least_0_9']} of {t['auc_defined']} "
            "answers >= 0.9.")
    names = [f"{a['kaggle_column']} {a['answer_text']}" for a in m["answers"]]
    s.items.append(Table(
        f"Per answer: mean vote fraction, galaxies with vote fraction >= {m['vote_threshold']}",
        ["answer", "mean", "confident", "share"],
        [[name, _f(a["mean"], ".3f"), str(a["n_confident"]), _pct(a["share_confident"], ".1f")]
         for name, a in zip(names, m["answers"], strict=True)]))
    if t:
        s.items.append(Table(
            "Per answer against truth (RMSE: model and predicting the mean; ROC AUC with "
            "the positives counted)",
            ["answer", "true mean", "RMSE", "baseline", "ROC AUC", "positives"],
            [[name, _f(a.get("truth_mean"), ".3f"), _f(a.get("rmse"), ".3f"),
              _f(a.get("rmse_baseline"), ".3f"), _f(a.get("auc"), ".3f"),
              str(a.get("n_positive", "-"))]
             for name, a in zip(names, m["answers"], strict=True)]))
    if mg := m.get("merger"):
        s.items.append(
            f"Merger fraction ({mg['column']} = {mg['kaggle_column']} >= {mg['threshold']}; "
            f"Class8.6 already includes Class6.1): {_f(mg['fraction'])} "
            f"({mg['k']}/{mg['n']}), {100 * mg['confidence']:.1f}% interval "
            f"[{_f(mg['lower'])}, {_f(mg['upper'])}] (Beta, Cameron 2011)")
        if mt := mg.get("truth"):
            verdict = "contains" if mt["interval_contains_truth"] else "does NOT contain"
            sel = mt["selection"]
            s.items.append(
                f"True merger fraction of the {mt['n']} matched galaxies: "
                f"{_f(mt['fraction'])} ({mt['k']}); predicted on them "
                f"{_f(mt['predicted_fraction_same_galaxies'])} "
                f"[{_f(mt['predicted_lower'])}, {_f(mt['predicted_upper'])}], which "
                f"{verdict} it. Merger selection: {sel['tp']} true, {sel['fp']} false "
                f"positives, {sel['fn']} missed.")
        hcols = ["threshold", "mergers", "fraction", "lower", "upper"]
        has_t = any("truth_k" in r for r in mg["by_threshold"])
        if has_t:
            hcols += ["true mergers", "true fraction"]
        rows = []
        for r in mg["by_threshold"]:
            row = [f"{r['threshold']:.2f}", str(r["k"]), _f(r["value"]), _f(r["lower"]),
                   _f(r["upper"])]
            if has_t:
                row += [str(r["truth_k"]), _f(r["truth_value"])]
            rows.append(row)
        s.items.append(Table("Merger fraction against threshold", hcols, rows))
    return s


def _redshift(z: dict) -> Section:
    s = Section("redshift", f"Redshift: {z['n']} spectra")
    p = z["z_pred_percentiles"]
    s.items.append(f"z_pred mean {_f(z['z_pred_mean'])}, std {_f(z.get('z_pred_std'))}, "
                   f"median {_f(p['p50'])}, 5-95% [{_f(p['p5'])}, {_f(p['p95'])}]")
    if "metrics" in z:
        m = z["metrics"]
        s.items.append(
            f"Against {z['truth_column']} ({z['n_with_truth']} spectra): dz = (z_pred - "
            f"z_true)/(1 + z_true); bias {_f(m['bias'], '+.4f')} (median "
            f"{_f(m['median_bias'], '+.4f')}), sigma_NMAD {_f(m['sigma_nmad'])}, outlier "
            f"fraction eta (|dz| > 0.15) {_pct(m['outlier_fraction'])}, MAE {_f(m['mae'])}")
        s.items.append(Table(
            "Error per 0.05 bin of true redshift (seed 003 layout, error = z_pred - z_true)",
            ["z bin", "n", "% data", "mean error", "std error", "bias dz/(1+z)",
             "σ_NMAD", "eta", "MAE"],
            [[f"{r['z_lo']:.2f}-{r['z_hi']:.2f}", str(r["n"]), f"{r['percent']:.2f}",
              _f(r["mean_error"], "+.4f"), _f(r["std_error"]), _f(r["bias"], "+.4f"),
              _f(r["sigma_nmad"]), _f(r["outlier_fraction"], ".3f"), _f(r["mae"])]
             for r in z["bias_table"]]))
    else:
        s.items.append("No true redshift column (--truth-column; z, z_true or redshift are "
                       "found automatically): distribution of z_pred only.")
    return s


def _lens(lens: dict) -> Section:
    s = Section("lens", f"Lens finding: {lens['n']} cut-outs")
    s.items.append(f"{lens['n_candidates']} candidates with p_lens >= {lens['threshold']}")
    t = lens.get("truth")
    if t:
        s.items.append(
            f"Against {t['file']} ({t['n_matched']} matched on ID: {t['n_lenses']} lenses, "
            f"{t['n_nonlenses']} non-lenses): AUROC {_f(t['auroc'], '.3f')}, TPR0 "
            f"{_f(t['tpr0'], '.3f')}, TPR10 {_f(t['tpr10'], '.3f')} (Metcalf et al. 2019; "
            "best space-based entries AUROC 0.93)")
        c = t["confusion"]
        s.items.append(Table(
            f"Confusion matrix at p_lens >= {c['threshold']}",
            ["", "predicted lens", "predicted non-lens", "rate"],
            [["lens", str(c["tp"]), str(c["fn"]), f"TPR {_f(c['tpr'], '.3f')}"],
             ["non-lens", str(c["fp"]), str(c["tn"]), f"TNR {_f(c['tnr'], '.3f')}"]]))
        s.items.append(Table("TPR and TNR against threshold (seed 004)",
                             ["threshold", "TPR", "TNR"],
                             [[f"{r['threshold']:.2f}", _f(r["tpr"], ".3f"),
                               _f(r["tnr"], ".3f")]
                              for r in t["rates_by_threshold"][::2]]))
    if lens["candidates"]:
        has_t = any("is_lens" in c for c in lens["candidates"])
        cols = ["rank", "object_id", "p_lens"] + (["true lens?"] if has_t else [])
        s.items.append(Table(
            f"Top {len(lens['candidates'])} of {lens['n_candidates']} candidates, by p_lens",
            cols, [[str(i + 1), c["object_id"], _f(c["p_lens"])]
                   + ([{True: "yes", False: "no", None: "?"}[c.get("is_lens")]]
                      if has_t else [])
                   for i, c in enumerate(lens["candidates"])]))
    return s


def _cosmology(c: dict, show: int = 20) -> Section:
    s = Section("cosmology", f"Cosmology: {c['n']} density fields")
    s.items.append(f"Omega_m {c['omega_m_mean']:.4f} +/- {c['omega_m_std']:.4f} (scatter), "
                   f"sigma_8 {c['sigma_8_mean']:.4f} +/- {c['sigma_8_std']:.4f}")
    t = c.get("truth")
    if t:
        s.items.append(f"Against {t['file']} ({t['n_matched']} fields matched on ID); "
                       f"baseline: {t['baseline_note']}")
        s.items.append(Table("Parameters against truth", [
            "parameter", "RMSE", "bias", "baseline", "RMSE baseline", "bias baseline"], [
            [name, _f(t[k]["rmse"]), _f(t[k]["bias"], "+.4f"), _f(t[k]["baseline"], ".2f"),
             _f(t[k]["rmse_baseline"]), _f(t[k]["bias_baseline"], "+.4f")]
            for k, name in (("omega_m", "Omega_m"), ("sigma_8", "sigma_8"))]))
    fields = c.get("fields", [])
    if fields:
        has_t = "omega_m_true" in fields[0]
        cols = ["field", "Omega_m", "sigma_8"] + (["Omega_m true", "sigma_8 true"]
                                                  if has_t else [])
        more = f" (first {show} of {c['n']})" if c["n"] > show else ""
        s.items.append(Table(f"Per field{more}", cols, [
            [f["object_id"], _f(f["omega_m_pred"]), _f(f["sigma_8_pred"])]
            + ([_f(f.get("omega_m_true")), _f(f.get("sigma_8_true"))] if has_t else [])
            for f in fields[:show]]))
    return s


def render(report: dict, console: Console | None = None) -> None:
    """The report as rich tables on the terminal."""
    c = console or Console()
    for sec in sections(report):
        c.rule(f"[bold]{sec.title}")
        for item in sec.items:
            if isinstance(item, Table):
                t = RichTable(title=item.title, box=box.SIMPLE_HEAD, pad_edge=False,
                              collapse_padding=True)
                for i, col in enumerate(item.columns):
                    text = i in item.text_columns
                    t.add_column(col, justify="left" if text else "right",
                                 no_wrap=text and i == 0)
                for row in item.rows:
                    t.add_row(*row)
                c.print(t)
            else:
                c.print(item, highlight=False, markup=False)
    if report.get("figures"):
        c.rule("[bold]Figures")
        for f in report["figures"]:
            c.print(f"{f.get('file') or f['name']}: {f['title']}", highlight=False,
                    markup=False)
