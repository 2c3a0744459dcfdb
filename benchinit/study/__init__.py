"""A study's definition: settings, cells and their ids, the grid, ``[tune]``, no-effect
settings, the validation split's rule, and the loader (TOML + overrides -> ``Study``).
"""
