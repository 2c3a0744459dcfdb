"""The coordinate check (Yang et al. 2022, "Tensor Programs V", Figures 5 and 6; microsoft/mup's
``get_coord_data``): how large each layer's coordinates are after t = 0, 1, ..., k training
steps, as a function of width.

On a fixed probe batch (the first ``probe_samples`` training samples), after each of the
first ``[train] coord_steps`` optimizer steps (t = 0 is before the first), per member:

- ``abs_h{l}``: mean |h_l| over samples and units of hidden layer l (its output);
- ``abs_logits``: mean |f(x)| of the head's outputs;
- ``delta_h{l}`` and ``delta_logits``: mean |x_t - x_0|, how far training moved them.

Stored as curves of split ``coord`` whose ``epoch`` column holds the step t. Under muP the
values are flat in width; under the standard parametrization the logits and the updates
grow with it (with Adam about linearly), which is why its best learning rate falls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchinit.engine.evaluation import Numerics, wide
from benchinit.engine.models import StackedMLP

SPLIT = "coord"


def measure(
    model: StackedMLP,
    activation: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    numerics: Numerics,
) -> dict[str, torch.Tensor]:
    """Per hidden layer and for the logits, the ``[G, B, units]`` values on ``x``."""
    trace: list[tuple[torch.Tensor, torch.Tensor]] = []
    with torch.no_grad(), numerics():
        logits = model(x, activation, trace, update=False)
    values = {f"h{layer}": wide(out) for layer, (_, out) in enumerate(trace, 1)}
    values["logits"] = wide(logits)
    return values


class CoordinateCheck:
    """Records the coordinate check into ``curves`` ({(step, split, metric): [G] values})."""

    def __init__(
        self,
        model: StackedMLP,
        activation: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        numerics: Numerics,
        steps: int,
    ) -> None:
        self.model, self.activation, self.x, self.numerics = model, activation, x, numerics
        self.steps = steps
        self.start: dict[str, torch.Tensor] = {}

    def wants(self, step: int) -> bool:
        return step <= self.steps

    def record(self, step: int, curves: dict[tuple[int, str, str], torch.Tensor]) -> None:
        """Measure after ``step`` optimizer steps (0: before training)."""
        values = measure(self.model, self.activation, self.x, self.numerics)
        if step == 0:
            self.start = values
        for name, value in values.items():
            curves[(step, SPLIT, f"abs_{name}")] = value.abs().mean((1, 2))
            curves[(step, SPLIT, f"delta_{name}")] = (value - self.start[name]).abs().mean((1, 2))
