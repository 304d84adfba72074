"""Load and faults (README.rst, "Load and faults"): tests/conftest.py has already started this
process's PostgreSQL cluster and configured Django (tests/ is on sys.path, for support and
pg_cluster).

The figures of each test (requests, errors by kind, connections, durations) are a report, not
only a pass: the ``stress_report`` fixture collects them and pytest prints them at the end of its
output ("load and faults: figures"), also under `tox -p` (the stress envs set
parallel_show_output).
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # loadclient, pgwatch, gunicorn_server, the stress project
    sys.path.insert(0, HERE)

_figures = []  # (test name, [lines])


class StressReport(object):
    def __init__(self, name):
        self.lines = []
        _figures.append((name, self.lines))

    def add(self, label, value):
        self.lines.append("%-34s %s" % (label + ":", value))


@pytest.fixture
def stress_report(request):
    return StressReport(request.node.name)


def _text():
    lines = []
    for name, figures in _figures:
        lines.append(name)
        lines.extend("    " + line for line in figures)
    return lines


def pytest_terminal_summary(terminalreporter):
    if not _figures:
        return
    terminalreporter.section("load and faults: figures")
    for line in _text():
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def own_connections_closed():
    """Each test here starts with this process's own server sessions closed. The figures count
    what the site's servers and PgBouncer hold, this process's sessions apart, and the faults
    terminate every backend: run after other tests in one process (the sdist's tests, run
    whole), the sessions those left open were terminated under them, and counted as lost."""
    from django.db import connections

    for alias in connections:
        connections[alias].close()
    yield
