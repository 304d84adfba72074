"""connlocal_shim installs itself from INSTALLED_APPS (apps.py on Django 1.7+, models.py
before) and from wsgi.py, in a process that starts as a site's does."""
import support

INSTALLED_APPS_START = r"""
import threading
import support
support.configure()
import connlocal_shim
assert not connlocal_shim.is_installed()
support.start_django()
from django.db import connections
other = []
thread = threading.Thread(target=lambda: other.append(connections["default"]))
thread.start(); thread.join()
print("INSTALLED %s" % connlocal_shim.is_installed())
print("THREAD_LOCAL %s" % (other[0] is not connections["default"]))
"""

WSGI_START = r"""
import sys, threading
import support
support.configure(installed_apps=())      # a production site: no app cache load before requests
import connlocal_shim
connlocal_shim.install()                  # what the README tells wsgi.py to do
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections
application = WSGIHandler()
seen = []
def serve():
    from wsgiref.util import setup_testing_defaults
    environ = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = "/ok/"
    body = b"".join(application(environ, lambda status, headers, exc_info=None: seen.append(status)))
    seen.append(connections["default"])
thread = threading.Thread(target=serve); thread.start(); thread.join()
print("INSTALLED %s" % connlocal_shim.is_installed())
print("STATUS %s" % seen[0])
print("THREAD_LOCAL %s" % (seen[1] is not connections["default"]))
"""


def test_installed_apps_installs_at_startup():
    out, _, _ = support.run_python(INSTALLED_APPS_START)
    assert "INSTALLED True" in out and "THREAD_LOCAL True" in out


def test_wsgi_py_install_before_serving():
    out, _, _ = support.run_python(WSGI_START)
    assert "INSTALLED True" in out
    assert "STATUS 200 OK" in out
    assert "THREAD_LOCAL True" in out


def test_app_config_is_found_where_the_app_registry_exists():
    import django

    import connlocal_shim

    if not hasattr(django, "setup"):
        assert not hasattr(connlocal_shim, "default_app_config")
        return
    from django.apps import apps

    config = apps.get_app_config("connlocal_shim")
    assert type(config).__name__ == "ConnlocalShimConfig"
