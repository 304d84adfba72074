"""The runnable example runs, and says what the docs say it says; without Django it says which
Python to run it with instead of a traceback."""
import os
import subprocess
import sys

import support

EXAMPLE = os.path.join(os.path.dirname(support.HERE), "examples", "routing_demo.py")
EXPECTED = [
    "write_note ran on: master",
    "meanwhile another thread used: default",
    "master has 1 note(s), default has 0",
    "after the rollback: audit rows: refund requested; notes: 0",
    "the other thread counted 1 audit row(s) through our connection",
]


def test_the_routing_demo_runs_on_this_django():
    with open(EXAMPLE) as handle:
        code = handle.read()
    out, err, _ = support.run_python(code)
    assert out.splitlines() == EXPECTED, err
    assert "Traceback" not in err


def bare_python():
    """The interpreter this env was made from (a Python 2.7 virtualenv's own cannot start
    without its site.py)."""
    prefix = getattr(sys, "real_prefix", None) or getattr(sys, "base_prefix", sys.prefix)
    path = os.path.join(prefix, "bin", "python%d.%d" % sys.version_info[:2])
    assert os.path.exists(path), "no base interpreter at %s" % path
    return path


def test_the_routing_demo_without_django_says_which_python_to_use():
    # The env's base Python with -S (no site-packages): no Django, as with a bare python3.
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    process = subprocess.Popen([bare_python(), "-S", EXAMPLE], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, cwd=support.HERE)
    out, err = process.communicate()
    err = err.decode("utf-8", "replace")
    assert process.returncode == 2, (out, err)
    assert "has no Django" in err and "Traceback" not in err, err
    assert "python3 -m compat_matrix --tests -e py313-django61" in err, err
