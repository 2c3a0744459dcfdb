"""Numbers from numbers: intervals and tests over seeds, effect sizes, mean-field theory.

No torch at import: the read side (compare, history, report) uses these; scipy loads
where a function needs it.
"""
