"""The authored side: prompt files in git, their versions, rendering, lint and diff.

Light on purpose: the runtime client imports `promptversion`, `rendering` and their
helpers from here, so nothing in this package's `__init__` may import git or SQL.
"""
