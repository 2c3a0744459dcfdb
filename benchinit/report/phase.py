"""The report's phase diagram: the main metric over the weight scale sigma_w and the depth,
beside mean-field theory's trainable depth (Schoenholz et al. 2017, "Deep information
propagation").

When it is drawn (the detection rule): a train study whose grid varies both ``initializer``
(what sets the weight scale) and ``model.depth``, whose runs record the measured
``sigma_w`` at initialization, and where, with every other varying axis fixed (a panel),
the initializers give at least two distinct measured scales. The columns are the measured
scales, not the initializer names: each initializer's median ``sigma_w`` over its cells,
and initializers within ``SAME_SCALE`` of each other share a column (the same scale is the
same question).

The theory, per panel: ``6 xi_c`` (:func:`benchinit.analysis.meanfield.phase_diagram`) dashed over
the drawn range of sigma_w and the critical scale
(:func:`~benchinit.analysis.meanfield.critical_sigma_w`,
chi_1 = 1) as a vertical line, for the panel's activation rebuilt by name from the built-in
plugins and its mean measured ``sigma_b``. The overlay is left out, and the caption says
why, for an activation that is not built in (a copied folder has no plugins), where torch is
not installed (the theory and the activations are torch code, imported only here), and for
residual or normalized networks, where the theory does not apply. Computing it costs about
0.1 s per point (a quadrature per sigma_w), so the curve has ``DENSE`` points plus a few
around the critical scale, where it rises steeply.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from benchinit.figures import analysis as analysis_figures
from benchinit.figures.layout import MAX_PANELS
from benchinit.report.section_figures import FigureJob, aggregate, panels_note, slug
from benchinit.report.sections import main_metric
from benchinit.results.tables import Results

DEPTH, SCALE = "model.depth", "initializer"
SAME_SCALE = 0.03  # initializers whose measured scales differ by less than this share: one column
DENSE = 14  # theory points across the drawn range of sigma_w
NEAR_CRITICAL = (0.97, 0.99, 1.01, 1.03)  # and these multiples of the critical scale


def _columns(rows: pd.DataFrame) -> pd.DataFrame:
    """Per initializer of one panel: its column's scale and the initializers sharing it."""
    scales = rows.groupby(SCALE, sort=False)["sigma_w"].median().sort_values()
    cluster, last, ids = -1, -math.inf, []
    for value in scales:
        if value > last * (1 + SAME_SCALE):
            cluster += 1
        last = value
        ids.append(cluster)
    table = pd.DataFrame({SCALE: scales.index, "scale": scales.to_numpy(), "column": ids})
    table["column_scale"] = table.groupby("column")["scale"].transform("mean")
    table["initializers"] = table.groupby("column")[SCALE].transform(lambda s: " / ".join(s))
    return table[[SCALE, "column_scale", "initializers"]]


def phase_cells(results: Results) -> tuple[pd.DataFrame, list[str]] | None:
    """The runs with their column's ``sigma_w`` (and the panels' facets), or None when the
    study is not a phase diagram (the detection rule in the module docstring)."""
    varying = results.varying
    if results.study["kind"] != "train" or DEPTH not in varying or SCALE not in varying:
        return None
    runs = results.runs.rename(columns={"sigma_w": "measured_sigma_w"})
    measured = pd.to_numeric(runs["measured_sigma_w"], errors="coerce")
    runs = runs[np.isfinite(measured) & (measured > 0)]
    facets = [a for a in varying if a not in (SCALE, DEPTH)]
    panels = list(runs.groupby(facets, sort=False, dropna=False)) if facets else [((), runs)]
    parts = []
    for _, rows in panels:
        columns = _columns(rows.assign(sigma_w=rows["measured_sigma_w"]))
        if columns["column_scale"].nunique() >= 2:
            parts.append(rows.merge(columns, on=SCALE).rename(columns={"column_scale": "sigma_w"}))
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True), facets


def _applies(results: Results, where: dict[str, Any]) -> str:
    """Why the theory does not apply to a panel ("" when it does)."""
    model = results.study["settings"].get("model", {})
    residual = where.get("model.residual", model.get("residual", False))
    norm = where.get("model.norm", model.get("norm", "none"))
    if residual not in (False, None, 0, "False", "false") or norm not in ("none", None):
        return "residual or normalized networks, where mean-field theory does not apply"
    return ""


def _theory(
    results: Results, cells: pd.DataFrame, where: dict[str, Any], registry: list[Any]
) -> tuple[pd.DataFrame, float, float, str]:
    """(curve, critical sigma_w, sigma_b, why not) for one panel's cells."""
    reason = _applies(results, where)
    activations = cells["activation"].dropna().unique() if "activation" in cells else []
    if not reason and len(activations) != 1:
        reason = "no single activation"
    sigma_b = float(np.nan_to_num(pd.to_numeric(cells["sigma_b"], errors="coerce").mean()))
    if reason:
        return pd.DataFrame(), math.nan, sigma_b, reason
    try:  # the theory needs the activation as torch code: the read side alone has no torch
        from benchinit.analysis.meanfield import critical_sigma_w, phase_diagram
        from benchinit.plugins.registry import Registry
    except ImportError:
        return (
            pd.DataFrame(),
            math.nan,
            sigma_b,
            "mean-field theory needs torch, not installed here",
        )
    try:
        if not registry:
            registry.append(Registry(autoload=False))
        phi = registry[0].bind("activation", str(activations[0]))
    except Exception:  # a plugin's activation: not in a copied folder's reach
        return pd.DataFrame(), math.nan, sigma_b, f"activation {activations[0]} is not built in"
    try:
        critical = critical_sigma_w(phi, sigma_b)
    except ValueError:
        critical = math.nan
    scales = np.sort(cells["sigma_w"].unique())
    edges = analysis_figures.cell_edges(scales)
    points = set(np.geomspace(edges[0], edges[-1], DENSE)) | set(scales)
    if math.isfinite(critical):
        points |= {critical * f for f in NEAR_CRITICAL if edges[0] < critical * f < edges[-1]}
    curve = phase_diagram(phi, sorted(points), sigma_b)[["sigma_w", "trainable_depth"]]
    return curve, critical, sigma_b, ""


def _select(frame: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column].astype(str) == str(value)
    return frame[mask]


def _caption(
    results: Results, panels: list[dict[str, Any]], table: pd.DataFrame, facets: list[str]
) -> str:
    metric = main_metric(results)
    seeds = table["seeds"][table["seeds"] > 0]
    low, high = (int(seeds.min()), int(seeds.max())) if len(seeds) else (0, 0)
    over = f"{low} seed{'s' if low != 1 else ''}" if low == high else f"{low} to {high} seeds"
    caption = (
        f"Phase diagram: mean {metric.label} over {over} by the weight scale sigma_w (x, log "
        "axis; one column per scale measured at initialization, initializers of the same "
        f"scale together) and {DEPTH} (y); grey: no seed finished. "
    )
    drawn = [p for p in panels if not p["reason"]]
    if drawn:
        p = drawn[0]
        values = ", ".join(f"{d:.3g} at {s:.3g}" for s, d in p["at_scales"] if math.isfinite(d))
        caption += (
            "Dashed: mean-field theory's trainable depth 6 xi_c (Schoenholz et al. 2017), "
            "the depth beyond which a network is not expected to train, for each panel's "
            f"activation and mean measured bias scale ({p['activation']}, sigma_b = "
            f"{p['sigma_b']:.3g}: 6 xi_c = {values}). "
        )
        if math.isfinite(p["critical"]):
            caption += (
                f"Dotted: the critical scale sigma_w = {p['critical']:.3g} (chi_1 = 1), where "
                "6 xi_c diverges: left of it the ordered phase (inputs become alike, "
                "gradients vanish), right the chaotic one (nearby inputs decorrelate). "
            )
    for p in panels:
        if p["reason"]:
            label = f" ({p['title']})" if p["title"] else ""
            caption += f"No theory curve{label}: {p['reason']}. "
    return caption.strip() + panels_note(table, facets)


def phase_jobs(results: Results) -> list[FigureJob]:
    """The phase diagram, when the study is one (module docstring)."""
    found = phase_cells(results)
    if found is None:
        return []
    cells, facets = found
    metric = main_metric(results)
    keys = [*facets, "sigma_w", DEPTH]
    ok = cells[cells["status"] == "ok"]
    table, _ = aggregate(ok.assign(value=ok[results.metric]), keys, metric)
    grid = cells[[*keys, "initializers"]].drop_duplicates(keys)
    table = grid.merge(table, on=keys, how="left").fillna({"seeds": 0})
    curves, criticals, panels = [], [], []
    registry: list[Any] = []  # a Registry, made once when a panel needs the theory
    groups = list(table.groupby(facets, sort=False, dropna=False)) if facets else [((), table)]
    for key, part in groups[:MAX_PANELS]:
        key = key if isinstance(key, tuple) else (key,)
        where = dict(zip(facets, key, strict=True))
        panel_cells = _select(cells, where)
        curve, critical, sigma_b, reason = _theory(results, panel_cells, where, registry)
        at = dict(zip(curve.get("sigma_w", []), curve.get("trainable_depth", []), strict=True))
        panels.append(
            {
                "title": ", ".join(f"{a} = {v}" for a, v in where.items()),
                "reason": reason,
                "critical": critical,
                "sigma_b": sigma_b,
                "activation": ", ".join(map(str, panel_cells["activation"].unique())),
                "at_scales": [(s, at.get(s, math.nan)) for s in sorted(part["sigma_w"].unique())],
            }
        )
        if not curve.empty:
            curves.append(curve.assign(**where))
        criticals.append({**where, "critical_sigma_w": critical, "sigma_b": sigma_b})
    theory = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    critical = pd.DataFrame(criticals)
    data = _data(table, theory, critical, facets)
    return [
        FigureJob(
            "phase",
            _caption(results, panels, table, facets),
            slug("phase", results.metric),
            analysis_figures.phase_plot,
            (table, DEPTH, facets, metric, theory, critical),
            data=data,
        )
    ]


def _data(
    table: pd.DataFrame, theory: pd.DataFrame, critical: pd.DataFrame, facets: list[str]
) -> pd.DataFrame:
    """The figure's numbers: the measured cells, then the theory's curve, one table."""
    measured = table.assign(source="measured")
    if not theory.empty:  # the curve's value at each measured scale (computed there)
        at = theory.rename(columns={"trainable_depth": "theory_6_xi_c"})
        measured = measured.merge(at, on=[*facets, "sigma_w"], how="left")
    parts = [measured]
    if not theory.empty:
        parts.append(
            theory.assign(source="theory").rename(columns={"trainable_depth": "theory_6_xi_c"})
        )
    data = pd.concat(parts, ignore_index=True)
    if facets:
        data = data.merge(critical, on=facets, how="left")
    else:
        data = data.assign(**critical.iloc[0].to_dict()) if len(critical) else data
    first = ["source", *facets, "sigma_w", DEPTH]
    return data[first + [c for c in data.columns if c not in first]]
