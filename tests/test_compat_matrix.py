"""compat_matrix/probe.py in this env: every check it can run passes here, and a feature that
is present but broken makes its check fail (the matrix must never say "works" for it).

Each case runs in a fresh interpreter, as ``python -m compat_matrix`` runs the probe."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT_MATRIX = os.path.join(os.path.dirname(HERE), "compat_matrix")


def run_probe_code(code):
    """Run ``code`` with compat_matrix/ first on sys.path (as probe.py runs) and return the JSON
    it prints last."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.path.insert(0, %r)\n%s" % (COMPAT_MATRIX, code)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=COMPAT_MATRIX,
    )
    out, err = process.communicate()
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    assert process.returncode in (0, 1), "probe crashed:\n%s\n%s" % (out, err)
    return json.loads(out.strip().splitlines()[-1])


def test_the_probe_passes_every_check_it_can_run_here():
    import django

    record = run_probe_code(
        "import json, shutil, tempfile, probe\n"
        "directory = tempfile.mkdtemp()\n"
        "record = probe.probe(directory)\n"
        "shutil.rmtree(directory)\n"
        "print(json.dumps(record))\n"
    )
    assert record["django"] == django.get_version()
    installed = os.path.dirname(record["connlocal_shim_path"])
    assert not os.path.exists(os.path.join(installed, "setup.py")), \
        "the probe must import the installed connlocal_shim, not the checkout's"
    results = dict((key, value["result"]) for key, value in record["features"].items())
    assert set(results.values()) <= set(["passed", "not applicable"]), record["features"]
    assert record["diagnostics"]["result"] == "passed", record["diagnostics"]
    assert len(record["install_log"]["info"]) == 1, "install() logs one INFO line"


# Start Django as the probe does, break one feature in place, then run only that check.
SABOTAGE = r"""
import atexit, json, shutil, tempfile
import probe
directory = tempfile.mkdtemp()
atexit.register(shutil.rmtree, directory, True)
probe.configure(directory)
probe.start_django()
import connlocal_shim
from django.db import connections
%s
this = probe.Probe(connlocal_shim.status())
print(json.dumps(this.run(%r)))
"""

ONE_WRAPPER_FOR_ALL_THREADS = """
handler_class = type(connections)
original = handler_class.__getitem__
shared = {}

def __getitem__(self, alias):   # the shape of Django 1.3 without the backport
    if alias not in shared:
        shared[alias] = original(self, alias)
    return shared[alias]

handler_class.__getitem__ = __getitem__
"""

NO_THREAD_SHARING_CHECK = """
wrapper_class = type(connections["memory"])
for klass in wrapper_class.__mro__:
    if "validate_thread_sharing" in vars(klass):
        klass.validate_thread_sharing = lambda self: None   # present, but checks nothing
"""

ASSIGNMENT_FOR_EVERY_THREAD = """
handler_class = type(connections)
everyone = {}
original_get = handler_class.__getitem__

def __setitem__(self, alias, value):     # re-points the alias for every thread
    everyone[alias] = value

def __getitem__(self, alias):
    return everyone[alias] if alias in everyone else original_get(self, alias)

handler_class.__setitem__ = __setitem__
handler_class.__getitem__ = __getitem__
"""


@pytest.mark.parametrize("key, sabotage, failure", [
    ("thread_local_handler", ONE_WRAPPER_FOR_ALL_THREADS, "3 threads share 1 wrapper(s)"),
    ("thread_sharing", NO_THREAD_SHARING_CHECK, "used the unshared wrapper without DatabaseError"),
    ("handler_setitem", ASSIGNMENT_FOR_EVERY_THREAD, "another thread saw 'other'"),
], ids=["one-wrapper-for-all-threads", "sharing-checks-nothing", "assignment-for-every-thread"])
def test_a_feature_present_but_broken_fails_its_check(key, sabotage, failure):
    result = run_probe_code(SABOTAGE % (sabotage, key))
    assert result["result"] == "failed", result
    assert failure in result["detail"], result
