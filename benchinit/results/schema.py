"""The result tables' schema (one owner): their columns and dtypes.

A batch of cells records into :class:`benchinit.engine.recorder.Recorder`, whose ``frames``
turn the rows into the tables ``runs``, ``curves``, ``layers``, ``histograms`` (of activations) and
``spectra`` (histograms of the input-output Jacobian's log10 singular values at the last
hidden layer, benchinit.engine.jacobian) with the documented dtypes (:data:`COLUMNS`). The store
writes them as they are, and ``load_results`` passes them through :func:`conform` again, so
older or foreign chunks read the same way.

``runs`` also has one column per grid axis (the cell's labels) and one per metric of its
study kind (benchinit.metrics), all float64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchinit.lazy import lazy

if TYPE_CHECKING:
    import pandas as pd
else:  # the study loader names the tuned columns: it need not wait for pandas
    pd = lazy("pandas")

from benchinit.metrics import METRICS

# A tuned study's runs columns (benchinit.study.tuning writes them, readers select by them).
STAGE = "stage"  # the config key and runs column: "tune" or "final" (absent when untuned)
TUNE, FINAL = "tune", "final"
TUNED_PREFIX = "tuned."  # runs column of a tuned parameter: "tuned.optimizer.lr"

TABLES = ("runs", "curves", "layers", "histograms", "spectra")
# Tables added after the first results were written: a chunk without one reads as empty.
LATER_TABLES = ("spectra",)
Records = dict[str, "pd.DataFrame"]

HISTOGRAM = {
    "cell": "str",
    "phase": "str",
    "layer": "int64",
    "bin": "int64",
    "left": "float64",
    "right": "float64",
    "count": "int64",
}
COLUMNS: dict[str, dict[str, str]] = {
    "runs": {
        "cell": "str",
        "seed": "int64",
        "status": "str",  # ok | diverged | failed
        "error": "str",
        "diverged_epoch": "Int64",
        "init_hash": "str",  # fingerprint of the member's initial weights (stack.fingerprints)
        "sigma_w": "float64",  # its hidden layers' weight scale at init (stack.init_scales)
        "sigma_b": "float64",  # and bias scale
        "seconds": "float64",  # the stacked batch's wall time divided by its cells
        "device": "str",
        # fingerprint of the code that computed it (benchinit.engine.execute.cell_code); "" in
        # records written before benchinit recorded it
        "code": "str",
        # its model's hidden layers' declared names, comma-separated ("" for the MLP, whose
        # layers are their numbers, and in records written before)
        "layer_names": "str",
    },
    "curves": {
        "cell": "str",
        "epoch": "int64",
        "split": "str",
        "metric": "str",
        "value": "float64",
    },
    "layers": {
        "cell": "str",
        "phase": "str",
        "layer": "int64",
        "metric": "str",
        "value": "float64",
    },
    "histograms": HISTOGRAM,  # of the activations
    "spectra": HISTOGRAM,  # of log10 singular values (left, right in log10 units)
}
ALL_METRICS = {m for metrics in METRICS.values() for m in metrics}


def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column of ``table`` present and of its documented dtype; a
    ValueError naming the column when one cannot be (a damaged or foreign file)."""
    frame = frame.copy()
    wanted = dict(COLUMNS[table])
    if table == "runs":
        wanted |= {metric: "float64" for metric in ALL_METRICS & set(frame.columns)}
    for column, dtype in wanted.items():
        if column not in frame:
            frame[column] = pd.Series([None] * len(frame), dtype="object")
        try:
            if dtype == "str":
                frame[column] = frame[column].fillna("").astype(str)
            else:
                frame[column] = frame[column].astype(dtype)
        except (TypeError, ValueError) as exc:
            missing = frame[column].isna().all() and len(frame)
            why = "it is missing" if missing else f"{type(exc).__name__}: {exc}"
            raise ValueError(f"column '{column}' cannot be {dtype} ({why})") from None
    return frame
