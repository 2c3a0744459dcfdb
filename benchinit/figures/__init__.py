"""seaborn figures: panel grids and scales, drawing to data URIs, facets, analysis plots.

They know DataFrames and metrics, not studies or results folders.
"""
