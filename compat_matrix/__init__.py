"""The compatibility matrix of connlocal-shim, from real runs (not installed with the package).

``python -m compat_matrix`` runs ``probe.py`` inside every env of the tox matrix and renders
the table: see ``runner.py`` and README.rst, "Compatibility matrix".
"""
