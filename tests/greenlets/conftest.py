"""Greenlets (gevent and eventlet; docs/servers.rst): tests/conftest.py has already started this
process's PostgreSQL cluster and configured Django, unpatched: every greenlet of these tests
runs in a subprocess, patched as its server would patch it.

The load runs' figures (requests, connections seen, errors) close pytest's output, under
"greenlets: figures", also under `tox -p` (the env sets parallel_show_output).
"""
import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
STRESS = os.path.join(os.path.dirname(HERE), "stress")
for path in (HERE, STRESS):  # greenlib; gunicorn_server, loadclient, pgwatch (tests/stress)
    if path not in sys.path:
        sys.path.insert(0, path)

_figures = []  # (test name, [lines])


class Figures(object):
    def __init__(self, name):
        self.lines = []
        _figures.append((name, self.lines))

    def add(self, label, value):
        self.lines.append("%-30s %s" % (label + ":", value))


@pytest.fixture
def workdir():
    """A temporary directory the servers' OS user can reach (their logs, sqlite files)."""
    directory = tempfile.mkdtemp(prefix="connlocal-green-")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, True)


@pytest.fixture
def figures(request):
    return Figures(request.node.name)


def pytest_terminal_summary(terminalreporter):
    if not _figures:
        return
    terminalreporter.section("greenlets: figures")
    for name, lines in _figures:
        terminalreporter.write_line(name)
        for line in lines:
            terminalreporter.write_line("    " + line)
