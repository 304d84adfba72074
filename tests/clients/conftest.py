"""The tools that patch Django beside connlocal_shim (tests/clients; clientsupport.py): each
scenario starts the client site (clientsite/) in a subprocess, as a site's process starts.
tests/conftest.py has already started this process's PostgreSQL cluster (its port goes to the
scenarios that use it)."""
import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # clientsupport
    sys.path.insert(0, HERE)

from clientsupport import SITE  # noqa: E402


@pytest.fixture
def site_dir():
    """A copy of the client site in a temporary directory (South writes migrations into it),
    with its sqlite file there."""
    parent = tempfile.mkdtemp(prefix="connlocal-clients-")
    directory = os.path.join(parent, "clientsite")
    shutil.copytree(SITE, directory, ignore=shutil.ignore_patterns("*.pyc", "__pycache__"))
    yield directory
    shutil.rmtree(parent, True)
