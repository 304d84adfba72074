"""The runnable example runs, and says what the docs say it says; without Django it says which
Python to run it with instead of a traceback."""
import os
import subprocess
import sys

import pytest

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


# -- examples/django13_site: docs/deploying.rst's Django 1.2/1.3 quick start -------------------

SITE = os.path.join(os.path.dirname(support.HERE), "examples", "django13_site")
SERVE_THE_SITE = r"""
import threading
from wsgiref.util import setup_testing_defaults
import mysite.wsgi
import connlocal_shim
from django.db import connections
seen = []
def serve():
    environ = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = "/"
    body = b"".join(mysite.wsgi.application(environ, lambda status, headers, exc=None: seen.append(status)))
    seen.append(body.decode("ascii"))
    seen.append(connections["default"])
thread = threading.Thread(target=serve, name="request-thread")
thread.start()
thread.join()
print("INSTALLED %s" % connlocal_shim.is_installed())
print("STATUS %s" % seen[0])
print("BODY %s" % seen[1].strip())
print("THREAD_LOCAL %s" % (seen[2] is not connections["default"]))
"""


def site_django():
    import django

    if django.VERSION[:2] not in ((1, 2), (1, 3)):
        pytest.skip("examples/django13_site is a Django 1.2/1.3 site (this is Django %s)"
                    % django.get_version())


def test_the_django13_sites_wsgi_py_installs_and_serves_from_thread_local_connections():
    # As gunicorn imports it: from the site's directory, in a fresh process, with no
    # DJANGO_SETTINGS_MODULE exported.
    site_django()
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = SITE
    process = subprocess.Popen([sys.executable, "-c", SERVE_THE_SITE], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, cwd=SITE)
    out, err = process.communicate()
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    assert process.returncode == 0, (out, err)
    assert out.splitlines() == [
        "INSTALLED True",
        "STATUS 200 OK",
        "BODY thread request-thread, own connection: True",
        "THREAD_LOCAL True",
    ], (out, err)


GUNICORN_LINE = "gunicorn --worker-class gthread --threads 16 --bind 127.0.0.1:8000 " \
    "mysite.wsgi:application"


def test_deploying_rst_shows_the_tested_wsgi_py_and_its_gunicorn_line():
    with open(os.path.join(SITE, "mysite", "wsgi.py")) as handle:
        code = handle.read()
    with open(os.path.join(os.path.dirname(support.HERE), "docs", "deploying.rst")) as handle:
        page = handle.read()
    assert ".. literalinclude:: ../examples/django13_site/mysite/wsgi.py" in page
    assert GUNICORN_LINE in page and GUNICORN_LINE in code
