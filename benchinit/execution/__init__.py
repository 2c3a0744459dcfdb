"""Running a study: its meta, where batches run, progress, computing cells once across
runs, seeds until decided, a tuned study's stages, and ``benchinit.run`` itself.
"""
