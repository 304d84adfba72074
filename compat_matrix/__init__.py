"""The compatibility matrix of connlocal-shim, from real runs (not installed with the package).

``python -m compat_matrix`` runs ``probe.py`` inside every env of the tox matrix and renders
the table (``runner.py``; docs/matrix.rst); with ``--tests``, the project's test command
(``tests_command.py``). ``tools.py`` finds the interpreters and makes the tools venv for both.
"""
