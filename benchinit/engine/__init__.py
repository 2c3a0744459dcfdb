"""Turning cells into records: stacked models, probes, Jacobians, data on the device,
``kind = "signal"`` and ``kind = "train"``, a batch of cells as one stacked model, its memory.
"""
