"""A results folder and what it holds: the tables' schema, ``meta.json``, the crash-safe store,
which record counts, the tables as pandas, and where a page may be written.

The read side's floor: nothing here imports torch, the engine or the study loader.
"""
