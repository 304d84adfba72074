"""Shared by the scenarios of tests/clients (the client site, clientsite/, started in a subprocess
as a site's process starts; the tool listed and imported before connlocal_shim or after it)."""
import json
import os
import pkgutil
import sys

import pytest

import support

HERE = os.path.dirname(os.path.abspath(__file__))
SITE = os.path.join(HERE, "clientsite")
ORDERS = ("tool-first", "shim-first")
# CI installs every tool (the py27-django13-clients env): there a missing one is a failure.
REQUIRE_CLIENTS = os.environ.get("CONNLOCAL_SHIM_REQUIRE_CLIENTS") == "1"


def require(module, package, era=False, find_only=False):
    """Skip (fail where CI requires the tools) when ``module`` cannot be imported
    (``find_only``: found, without importing it here; for a tool whose import needs the
    site's settings, such as django-celery's kombu on Python 2.7.11+). ``era``: the
    scenario drives a tool of Django 1.3's era on the site as Django 1.3 laid it out (manage.py's
    execute_manager, django.conf.urls.defaults): skip, by what is missing, on a Django without
    that layout, which the tool's releases of that era do not run on either (the shipped tests
    are run as they are, on every Django; clientsite/ is written for 1.3 and for the wrapt
    scenario, which starts the site on any Django)."""
    try:
        if find_only:
            if pkgutil.find_loader(module) is None:
                raise ImportError("No module named %s" % module)
        else:
            __import__(module)
    except ImportError as error:
        reason = "no %s (%s): pip install %s" % (module, error, package)
        if REQUIRE_CLIENTS:
            pytest.fail("CONNLOCAL_SHIM_REQUIRE_CLIENTS=1 and " + reason, pytrace=False)
        pytest.skip(reason)
    if era:
        missing = django_13_layout_missing()
        if missing:
            pytest.skip("the client site's Django 1.3 layout, which %s drives, needs %s, which "
                        "this Django no longer has" % (package.split("=")[0], missing))


def django_13_layout_missing():
    """What of the Django 1.3 site layout (clientsite/) this Django lacks, or None."""
    import django.core.management

    if not hasattr(django.core.management, "execute_manager"):
        return "django.core.management.execute_manager"
    try:
        import django.conf.urls.defaults  # noqa: F401
    except ImportError:
        return "django.conf.urls.defaults"
    return None


def site_env(directory, tool, order, postgres=False, **extra):
    """The environment clientsite/settings.py reads (and the scenario's extras)."""
    env = {
        "CONNLOCAL_CLIENTS_TOOL": tool,
        "CONNLOCAL_CLIENTS_ORDER": order,
        "CONNLOCAL_CLIENTS_SQLITE": os.path.join(directory, "site.sqlite3"),
        "DJANGO_SETTINGS_MODULE": "settings",
    }
    if postgres and support.postgres_cluster is not None:
        env["CONNLOCAL_CLIENTS_PG_PORT"] = str(support.postgres_cluster.port)
    env.update(extra)
    return env


def run_in_site(directory, args, env, timeout=120):
    """``python ARGS`` with the site's directory as the current one (manage.py's layout); a
    process still running after ``timeout`` seconds is killed (support.run_process)."""
    return support.run_process([sys.executable] + list(args), timeout, env=env, cwd=directory)


def result_of(finished):
    """The ``RESULT {json}`` line of a scenario script (sitestart.report)."""
    lines = [line for line in finished.out.splitlines() if line.startswith("RESULT ")]
    assert not finished.timed_out and lines, finished.describe()
    return json.loads(lines[-1][len("RESULT "):])
