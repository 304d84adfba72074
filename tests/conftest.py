"""The suite configures Django itself and starts it the way a site does, with connlocal_shim in
INSTALLED_APPS. Before that, a site module captures django.db.connection and a third-party
backend is loaded, so that install() finds both already there, as in a real process.

A throwaway PostgreSQL cluster, a PgBouncer in front of it and a throwaway MariaDB start first,
where their servers and drivers are installed: Django 1.2/1.3 cannot be reconfigured, so their
aliases must be in DATABASES from the start. They are stopped when pytest unconfigures (and at
exit, however the process ends: tests/pg_cluster.py, pgbouncer.py, mariadb_server.py).
"""
import sys

import support

support.configure(extra_databases=support.start_servers())

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
        pgbouncer_header(),
        mysql_header(),
    ]


def postgres_header():
    cluster = support.postgres_cluster
    if cluster is None:
        return "PostgreSQL: none (%s)" % support.postgres_unavailable
    return "PostgreSQL %s on %s:%s in %s: %s" % (
        cluster.version, support.pg_cluster.HOST, cluster.port, cluster.directory,
        ", ".join(support.POSTGRES_ALIASES),
    )


def pgbouncer_header():
    bouncer = support.pgbouncer_server
    if bouncer is None:
        return "PgBouncer: none (%s)" % support.pgbouncer_unavailable
    return "%s (transaction pooling, pools of %d) on %s:%s: %s" % (
        bouncer.version, support.pgbouncer.POOL_SIZE, support.pgbouncer.HOST, bouncer.port,
        ", ".join(sorted(support.PGBOUNCER_ROLES.values())),
    )


def mysql_header():
    server = support.mysql_server
    if server is None:
        return "MariaDB: none (%s)" % support.mysql_unavailable
    import MySQLdb

    return "MariaDB %s on %s:%s in %s: %s (MySQLdb %s)" % (
        server.version, support.mariadb_server.HOST, server.port, server.directory,
        ", ".join(sorted(support.MYSQL_ROLES.values())),
        ".".join(str(part) for part in MySQLdb.version_info[:3]),
    )


def pytest_configure(config):
    for name, what in (
        ("requires_postgres", "the throwaway PostgreSQL cluster"),
        ("requires_mysql", "the throwaway MariaDB server and mysqlclient"),
        ("requires_pgbouncer", "the throwaway PgBouncer in front of the PostgreSQL cluster"),
    ):
        config.addinivalue_line("markers", "%s: needs %s (tests/support.py)" % (name, what))


def pytest_runtest_setup(item):
    support.check_servers(item)


def pytest_unconfigure(config):
    support.stop_servers()
