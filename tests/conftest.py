"""The suite configures Django itself and starts it the way a site does, with connlocal_shim in
INSTALLED_APPS. Before that, a site module captures django.db.connection and a third-party
backend is loaded, so that install() finds both already there, as in a real process.

A throwaway PostgreSQL cluster starts first, where a server and a driver are installed: Django
1.2/1.3 cannot be reconfigured, so its aliases must be in DATABASES from the start. It is
stopped when pytest unconfigures (and at exit, however the process ends: tests/pg_cluster.py).
"""
import sys

import support

support.configure(extra_databases=support.start_postgres())

from django.db import connections  # noqa: E402

connections["thirdparty"]  # load the third-party backend before install
support.load_backends()  # every built-in and GIS backend whose driver is installed here
import legacy_module  # noqa: E402,F401 (captures django.db.connection before install)

support.start_django()


def pytest_report_header(config):
    import django

    import connlocal_shim

    features = support.original_features()
    return [
        "Django %s, connlocal_shim %s on Python %s; backported: %s" % (
            django.get_version(),
            connlocal_shim.__version__,
            sys.version.split()[0],
            ", ".join(features.missing) or "nothing (all native)",
        ),
        postgres_header(),
    ]


def postgres_header():
    cluster = support.postgres_cluster
    if cluster is None:
        return "PostgreSQL: none (%s)" % support.postgres_unavailable
    return "PostgreSQL %s on %s:%s in %s: %s" % (
        cluster.version, support.pg_cluster.HOST, cluster.port, cluster.directory,
        ", ".join(support.POSTGRES_ALIASES),
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires_postgres: needs the throwaway PostgreSQL cluster (tests/support.py)"
    )


def pytest_runtest_setup(item):
    support.check_postgres(item)


def pytest_unconfigure(config):
    support.stop_postgres()
