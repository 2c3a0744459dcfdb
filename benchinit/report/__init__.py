"""The HTML report of one results folder: its sections, the figures each draws, plugin
sections, the Jinja2 environment and ``templates/``, and the page put together.
"""
