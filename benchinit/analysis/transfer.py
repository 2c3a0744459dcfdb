"""Learning rates across width: the best rate per width and how it scales (Yang et al. 2022,
"Tensor Programs V": under muP the best rate stays put as width grows; under the standard
parametrization with Adam it falls about as 1/width).

- :func:`best_rates`: per configuration and width, the rate with the best mean metric over
  seeds, refined between grid points by a parabola through the best point and its two
  neighbours in log rate (the vertex, kept within half a grid step of the best point; at
  an edge of the grid the grid point itself, flagged ``edge``);
- :func:`rate_slopes`: per configuration, the least-squares slope of log(best rate) on
  log(width), with a 95% t interval (n - 2 degrees of freedom; none with two widths), and
  the spread of the best grid points in grid steps (``steps``: how many grid points apart
  the highest and lowest best rates are; "within one grid step" is ``steps <= 1``);
- :func:`transferred`: the rate tuned at the narrowest width used at every width, against
  each width's own best: what tuning small and training wide costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchinit.analysis.stats import t_quantile

BEST_COLUMNS = ("width", "lr", "grid_lr", "grid_index", "value", "edge")
SLOPE_COLUMNS = ("slope", "ci_low", "ci_high", "widths", "steps", "edge")


def _refined(rates: np.ndarray, values: np.ndarray, best: int, minimize: bool) -> float:
    """The rate at the vertex of the parabola (in log rate) through the best point and its
    neighbours; the best point itself at an edge or where the parabola opens wrong."""
    logs = np.log(rates)
    if not 0 < best < len(rates) - 1:
        return float(rates[best])
    x, y = logs[best - 1 : best + 2], values[best - 1 : best + 2]
    if not np.all(np.isfinite(y)):
        return float(rates[best])
    a, b, _ = np.polyfit(x, y, 2)
    if (a <= 0) if minimize else (a >= 0):
        return float(rates[best])
    half = min(x[1] - x[0], x[2] - x[1]) / 2
    return math.exp(float(np.clip(-b / (2 * a), logs[best] - half, logs[best] + half)))


def best_rates(
    frame: pd.DataFrame,
    by: Sequence[str],
    *,
    width: str = "model.width",
    lr: str = "tuned.optimizer.lr",
    metric: str = "val_loss",
    minimize: bool = True,
) -> pd.DataFrame:
    """One row per configuration (``by``) and width: ``lr`` (refined), ``grid_lr`` (the
    best grid point) and ``grid_index`` (its place among the rates tried, 0 the lowest),
    ``value`` (its mean metric), ``edge`` (best at the grid's edge). A diverged or failed
    run's metric counts as the worst."""
    keys = [*by, width]
    worst = math.inf if minimize else -math.inf
    values = pd.to_numeric(frame[metric], errors="coerce").where(lambda v: np.isfinite(v), worst)
    means = frame.assign(_v=values).groupby([*keys, lr], dropna=False)["_v"].mean().reset_index()
    rows = []
    for key, group in means.groupby(keys, sort=True, dropna=False):
        group = group.sort_values(lr)
        rates = group[lr].to_numpy(float)
        scores = group["_v"].to_numpy(float)
        best = int(np.argmin(scores) if minimize else np.argmax(scores))
        rows.append(
            {
                **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                "lr": _refined(rates, scores, best, minimize),
                "grid_lr": rates[best],
                "grid_index": best,
                "value": scores[best],
                "edge": not 0 < best < len(rates) - 1,
            }
        )
    table = pd.DataFrame(rows, columns=[*keys, *BEST_COLUMNS[1:]])
    return table.rename(columns={width: "width"})


def rate_slopes(best: pd.DataFrame, by: Sequence[str], level: float = 0.95) -> pd.DataFrame:
    """Per configuration (``by``), the slope of log(best rate) on log(width) and its
    interval, from :func:`best_rates`' table."""
    rows = []
    groups = best.groupby(list(by), sort=False, dropna=False) if by else [((), best)]
    for key, group in groups:
        x, y = np.log(group["width"].to_numpy(float)), np.log(group["lr"].to_numpy(float))
        n = len(x)
        slope = low = high = math.nan
        if n >= 2 and np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
            if n >= 3:
                residual = y - (slope * x + intercept)
                se = math.sqrt(residual @ residual / (n - 2) / ((x - x.mean()) @ (x - x.mean())))
                half = t_quantile(0.5 + level / 2, n - 2) * se
                low, high = slope - half, slope + half
        grid = group["grid_index"].to_numpy(int)
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                "slope": float(slope),
                "ci_low": low,
                "ci_high": high,
                "widths": n,
                "steps": int(np.ptp(grid)) if n else 0,
                "edge": bool(group["edge"].any()),
            }
        )
    return pd.DataFrame(rows, columns=[*by, *SLOPE_COLUMNS])


def narrowest(best: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """:func:`best_rates`' row of the narrowest width, per configuration."""
    ordered = best.sort_values("width", kind="stable")
    return ordered.groupby(list(by), sort=False, dropna=False).head(1) if by else ordered.head(1)


def transferred(
    means: pd.DataFrame, best: pd.DataFrame, by: Sequence[str], *, minimize: bool = True
) -> pd.DataFrame:
    """The rate tuned at the narrowest width, used at every width (muP's promise: tune
    small, train wide). ``means``: ``by``, ``width``, ``lr``, ``value`` (mean over seeds);
    ``best``: :func:`best_rates`' table. One row per configuration and width: the
    transferred rate (the narrowest width's best grid point), the metric there, the width's
    own best grid rate and metric, and ``regret`` (how much worse the transferred rate is;
    0 where it is the width's own best)."""
    keys = list(by)
    source = narrowest(best, keys)[[*keys, "grid_lr"]]
    source = source.rename(columns={"grid_lr": "transferred_lr"})
    at = means.merge(source, on=keys, how="inner") if keys else means.merge(source, how="cross")
    at = at[np.isclose(at["lr"], at["transferred_lr"], rtol=1e-9)]
    at = at.rename(columns={"value": "transferred_value"}).drop(columns="lr")
    own = best[[*keys, "width", "grid_lr", "value"]].rename(
        columns={"grid_lr": "best_lr", "value": "best_value"}
    )
    table = at.merge(own, on=[*keys, "width"], how="left")
    sign = 1.0 if minimize else -1.0
    table["regret"] = sign * (table["transferred_value"] - table["best_value"])
    return table.sort_values([*keys, "width"], kind="stable").reset_index(drop=True)
