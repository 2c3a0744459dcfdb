"""The plugin contract and its registry: descriptors a plugin returns, parameter specs, the
pluggy hooks, the guard around every call into plugin code, one plugin manager.
"""
