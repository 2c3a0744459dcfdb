"""Judging results against each other: the decision rule, ``compare`` of two folders,
``history`` of a series, the ``index`` of many, and their pages.
"""
