"""``[tune] transfer``: tune small, train wide (Yang et al. 2022, "Tensor Programs V").

    [tune]
    "optimizer.lr" = [1e-3, 3e-3, 1e-2]
    transfer = {"model.width" = 64}   # final runs at every width use width 64's choice

Every configuration is still tuned, so the report can set the value transferred from the
source configuration (the same configuration with the axis at the given value) beside the
one tuned at that configuration directly; the final runs, over the study's seeds, use the
transferred one. The axis is any grid axis with more than one value; the value is one of
its values, as written in ``[grid]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from benchinit.errors import did_you_mean

KEY = "transfer"
Fail = Callable[[str, str], Exception]


def parse_transfer(
    raw: Any, axes: Mapping[str, Sequence[Any]], fail: Fail
) -> tuple[str, Any] | None:
    """``(axis, value as written)`` of ``[tune] transfer``, or None when it is absent."""
    if raw is None:
        return None
    where = f"tune.{KEY}"
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise fail(
            where,
            "must name one grid axis and the value to transfer from, e.g. transfer = "
            '{"model.width" = 64}',
        )
    ((axis, value),) = raw.items()
    while isinstance(value, Mapping) and len(value) == 1:  # transfer = {model.width = 64}
        ((key, value),) = value.items()
        axis = f"{axis}.{key}"
    if axis not in axes:
        raise fail(
            where,
            f"'{axis}' is not a grid axis.{did_you_mean(axis, list(axes))} Grid axes: "
            f"{', '.join(axes) or 'none'}.",
        )
    values = list(axes[axis])
    if len(values) < 2:
        raise fail(where, f"grid axis '{axis}' has one value: there is nothing to transfer to")
    if value not in values:
        shown = ", ".join(repr(v) for v in values)
        raise fail(where, f"{value!r} is not one of grid.{axis}'s values ({shown})")
    return axis, value


def source_label(axis: str, value: Any, written: Sequence[Any], labels: Sequence[Any]) -> Any:
    """The label (as the tables hold it) of ``value``, one of the axis's ``written`` values,
    given the axis's ``labels`` in the same (grid) order."""
    return list(labels)[list(written).index(value)]
