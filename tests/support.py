"""Shared by the test modules: the test settings, threads that report back, subprocesses.

The suite configures Django itself (pytest-django does not reach Django 1.2), with real sqlite
databases: files in a temporary directory, and one in memory; where a PostgreSQL server and
driver are installed, three databases of a throwaway cluster (start_postgres()) and three more
of it through a throwaway PgBouncer (start_pgbouncer()); where a MariaDB server and MySQLdb
(mysqlclient) are installed, three databases of a throwaway MariaDB (start_mysql()).
"""
import atexit
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading

import pytest

import mariadb_server
import pg_cluster
import pgbouncer

try:  # Python 2
    from thread import get_ident
except ImportError:  # Python 3
    from threading import get_ident

HERE = os.path.dirname(os.path.abspath(__file__))


def database_settings(directory):
    def sqlite(name):
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(directory, name),
            # Several threads write to one file in the concurrency tests.
            "OPTIONS": {"timeout": 60},
        }

    thirdparty = sqlite("thirdparty.sqlite3")
    thirdparty["ENGINE"] = "thirdparty_backend"
    tracked = sqlite("tracked.sqlite3")
    tracked["OPTIONS"] = {"timeout": 60, "factory": TrackedConnection}
    return {
        "default": sqlite("default.sqlite3"),
        "other": sqlite("other.sqlite3"),
        "memory": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "thirdparty": thirdparty,
        "audit": sqlite("audit.sqlite3"),
        "tracked": tracked,
        "tracked_memory": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "OPTIONS": {"factory": TrackedConnection},
        },
    }


class TrackedConnection(sqlite3.Connection):
    """A real sqlite connection (the aliases ``tracked`` and ``tracked_memory`` open these) that
    a weak reference can watch, as sqlite3.Connection itself cannot: once the reference is
    dead, the connection was freed, and sqlite closes a connection it frees."""


def configure(directory=None, installed_apps=("connlocal_shim",), extra_databases=None):
    """settings.configure() for the tests, then start Django the way a site starts it.
    ``extra_databases`` (start_postgres()'s) join the sqlite ones in DATABASES."""
    from django.conf import settings

    if directory is None:
        directory = tempfile.mkdtemp(prefix="connlocal-shim-tests-")
        # The sqlite files go with the process (subprocess tests make one directory each).
        atexit.register(shutil.rmtree, directory, True)
    databases = database_settings(directory)
    databases.update(extra_databases or {})
    settings.configure(
        DEBUG=False,
        DATABASES=databases,
        INSTALLED_APPS=list(installed_apps),
        SECRET_KEY="connlocal-shim-tests",
        USE_TZ=False,
        MIDDLEWARE_CLASSES=(),
        ROOT_URLCONF="site_urls",
    )
    return directory


def write_late_backend(where, package="late_backend"):
    """A third-party backend under ``where`` (put on sys.path) that no module imports before
    install: its DatabaseWrapper, a subclass of sqlite's, is defined on whatever class
    sqlite's is when it is first imported. Returns its DATABASES entry."""
    os.mkdir(os.path.join(where, package))
    open(os.path.join(where, package, "__init__.py"), "w").close()
    with open(os.path.join(where, package, "base.py"), "w") as module:
        module.write("from django.db.backends.sqlite3.base import *\n"
                     "from django.db.backends.sqlite3 import base as sqlite_base\n"
                     "class DatabaseWrapper(sqlite_base.DatabaseWrapper):\n"
                     "    pass\n")
    sys.path.insert(0, where)
    return {"ENGINE": package, "NAME": os.path.join(where, package + ".sqlite3")}


# -- PostgreSQL ---------------------------------------------------------------------------------
# Django 1.2/1.3 cannot be reconfigured, so the PostgreSQL aliases must be in DATABASES from the
# start: conftest calls start_postgres() before configure(). Each pytest process has its own
# cluster (tests/pg_cluster.py), stopped when the process ends.

# CI installs the server and every env's driver: there, no PostgreSQL is a failure, not a skip.
REQUIRE_POSTGRES = os.environ.get("CONNLOCAL_SHIM_REQUIRE_POSTGRES") == "1"
POSTGRES_DATABASES = ("master", "replica", "audit")
POSTGRES_ALIASES = ()  # ("pg_master", "pg_replica", "pg_audit") once the cluster runs
postgres_cluster = None
postgres_unavailable = "start_postgres() was not called"  # why there is no PostgreSQL, or None

# Tests that need the PostgreSQL aliases; conftest skips them, with postgres_unavailable as the
# reason, where there is no server or driver (and fails them if REQUIRE_POSTGRES).
requires_postgres = pytest.mark.requires_postgres

# The same roles on sqlite files and on each server database, for tests that run on all of them
# (see parametrize_over_databases).
SQLITE_ROLES = {"master": "default", "replica": "other", "audit": "audit"}
POSTGRES_ROLES = dict((name, "pg_" + name) for name in POSTGRES_DATABASES)


def parametrize_over_databases(argname="aliases", kinds=None):
    """Run a test once on sqlite, on PostgreSQL, on MariaDB and through PgBouncer: ``argname``
    is a dict of the roles "master", "replica" and "audit" to aliases, with the ids ``sqlite``,
    ``postgres``, ``mysql`` and ``pgbouncer`` (``kinds`` picks some of them)::

        @support.parametrize_over_databases()
        def test_something(aliases):
            connections[aliases["master"]] ...
            if support.database_kind(aliases["master"]) == "mysql": ...

    A server case carries its requires_* mark: it is skipped (or fails) with the reason where
    its server or driver is missing, never silently left out.
    """
    params = [pytest.param(dict(SQLITE_ROLES), id="sqlite")]
    for kind in SERVER_KINDS:
        params.append(pytest.param(dict(kind.roles), id=kind.name, marks=kind.mark))
    if kinds is not None:
        unknown = set(kinds) - set(param.id for param in params)
        if unknown:
            raise ValueError("parametrize_over_databases: unknown kinds %s (known: %s)" % (
                ", ".join(sorted(unknown)), ", ".join(param.id for param in params)))
        params = [param for param in params if param.id in kinds]
    return pytest.mark.parametrize(argname, params)


def database_kind(alias):
    """"sqlite", "postgres", "mysql" or "pgbouncer": what the test alias ``alias`` is on."""
    for kind in SERVER_KINDS:
        if alias in kind.roles.values():
            return kind.name
    return "sqlite"


def postgres_engine():
    """The ENGINE of Django's psycopg2 backend: postgresql_psycopg2 wherever that package
    exists (up to Django 2.2; an alias of the next since 1.9), else postgresql (Django 3.0
    removed the old name). Not "postgresql wherever it exists": up to Django 1.3 that name is the
    psycopg 1 backend. Looked up on disk: Django must not load its database layer before
    settings are configured."""
    import django

    backends = os.path.join(os.path.dirname(django.__file__), "db", "backends")
    if os.path.isfile(os.path.join(backends, "postgresql_psycopg2", "__init__.py")):
        return "django.db.backends.postgresql_psycopg2"
    return "django.db.backends.postgresql"


def start_postgres():
    """Start this process's throwaway cluster and return the DATABASES entries of its
    aliases, or {} with the reason in ``postgres_unavailable``."""
    global POSTGRES_ALIASES, postgres_cluster, postgres_unavailable

    try:
        import psycopg2  # noqa: F401 (what both backend names import)
    except ImportError as error:
        postgres_unavailable = "no PostgreSQL driver (%s): pip install psycopg2-binary" % error
        return {}
    bin_directory = pg_cluster.find_server_bin()
    if bin_directory is None:
        postgres_unavailable = (
            "no PostgreSQL server programs (initdb, pg_ctl) on PATH or in %s: %s"
            % (pg_cluster.DEBIAN_BIN_GLOB, pg_cluster.INSTALL_HINT)
        )
        return {}
    try:
        cluster = pg_cluster.PostgresCluster(bin_directory).start(POSTGRES_DATABASES)
    except pg_cluster.ClusterError as error:
        postgres_unavailable = "the throwaway PostgreSQL cluster did not start: %s" % error
        return {}
    postgres_cluster, postgres_unavailable = cluster, None
    engine = postgres_engine()
    databases = {}
    for name in POSTGRES_DATABASES:
        databases[POSTGRES_ROLES[name]] = {
            "ENGINE": engine,
            "NAME": name,
            "USER": pg_cluster.SUPERUSER,
            "HOST": pg_cluster.HOST,
            "PORT": str(cluster.port),
        }
    POSTGRES_ALIASES = tuple(sorted(databases))
    return databases


def stop_postgres():
    """Stop the cluster start_postgres() started (conftest's pytest_unconfigure)."""
    if postgres_cluster is not None:
        postgres_cluster.stop()


def check_servers(item):
    """For conftest's pytest_runtest_setup: skip a test whose server database is unavailable
    (requires_postgres, requires_mysql, requires_pgbouncer), or fail it where CI requires that
    server (CONNLOCAL_SHIM_REQUIRE_POSTGRES, _MYSQL, _PGBOUNCER)."""
    for kind in SERVER_KINDS:
        unavailable = kind.unavailable()
        if unavailable is None or item.get_closest_marker(kind.mark.name) is None:
            continue
        if kind.required:
            pytest.fail("%s=1 and %s" % (kind.require_variable, unavailable), pytrace=False)
        pytest.skip(unavailable)


# -- MariaDB ------------------------------------------------------------------------------------
# Like PostgreSQL: a throwaway server per pytest process (tests/mariadb_server.py), its aliases
# in DATABASES from the start (conftest calls start_mysql() before configure()).

REQUIRE_MYSQL = os.environ.get("CONNLOCAL_SHIM_REQUIRE_MYSQL") == "1"
MYSQL_DATABASES = ("master", "replica", "audit")
MYSQL_ROLES = dict((name, "my_" + name) for name in MYSQL_DATABASES)
mysql_server = None
mysql_unavailable = "start_mysql() was not called"
requires_mysql = pytest.mark.requires_mysql


def mysql_driver():
    """The MySQLdb module (mysqlclient), or raise ImportError. PyMySQL posing as MySQLdb (see
    load_backends) does not count: the tests are of mysqlclient, what sites ran."""
    import MySQLdb

    if MySQLdb.__name__ != "MySQLdb":
        raise ImportError("MySQLdb here is PyMySQL's stand-in, not mysqlclient")
    return MySQLdb


def start_mysql():
    """Start this process's throwaway MariaDB and return the DATABASES entries of its aliases,
    or {} with the reason in ``mysql_unavailable``."""
    global mysql_server, mysql_unavailable

    try:
        mysql_driver()
    except ImportError as error:
        mysql_unavailable = "no MySQL driver (MySQLdb: %s): pip install mysqlclient" % error
        return {}
    programs = mariadb_server.find_server()
    if programs is None:
        mysql_unavailable = (
            "no MariaDB server programs (mariadb-install-db, mariadbd, mariadb) on PATH: %s"
            % mariadb_server.INSTALL_HINT
        )
        return {}
    try:
        server = mariadb_server.MariaDBServer(programs).start(MYSQL_DATABASES)
    except mariadb_server.ServerError as error:
        mysql_unavailable = "the throwaway MariaDB server did not start: %s" % error
        return {}
    mysql_server, mysql_unavailable = server, None
    databases = {}
    for name in MYSQL_DATABASES:
        databases[MYSQL_ROLES[name]] = {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": mariadb_server.SUPERUSER,
            "HOST": mariadb_server.HOST,
            "PORT": str(server.port),
        }
    return databases


def stop_mysql():
    if mysql_server is not None:
        mysql_server.stop()


# -- PgBouncer ----------------------------------------------------------------------------------
# A throwaway PgBouncer in transaction pooling mode (tests/pgbouncer.py) in front of this
# process's cluster, pooling databases of their own (bouncer_master...), so that its idle server
# connections never show in the counts of the PostgreSQL tests' databases.

REQUIRE_PGBOUNCER = os.environ.get("CONNLOCAL_SHIM_REQUIRE_PGBOUNCER") == "1"
PGBOUNCER_DATABASES = dict((name, "bouncer_" + name) for name in POSTGRES_DATABASES)
PGBOUNCER_ROLES = dict((name, "pgb_" + name) for name in POSTGRES_DATABASES)
pgbouncer_server = None
pgbouncer_unavailable = "start_pgbouncer() was not called"
requires_pgbouncer = pytest.mark.requires_pgbouncer


def start_pgbouncer():
    """Start this process's PgBouncer in front of its cluster (start_postgres() first) and
    return the DATABASES entries of its aliases, or {} with the reason in
    ``pgbouncer_unavailable``."""
    global pgbouncer_server, pgbouncer_unavailable

    if postgres_cluster is None:
        pgbouncer_unavailable = "no PostgreSQL behind PgBouncer: %s" % postgres_unavailable
        return {}
    program = pgbouncer.find_pgbouncer()
    if program is None:
        pgbouncer_unavailable = "no pgbouncer program on PATH nor in /usr/sbin: %s" % (
            pgbouncer.INSTALL_HINT)
        return {}
    try:
        for database in sorted(PGBOUNCER_DATABASES.values()):
            postgres_cluster._psql('CREATE DATABASE "%s"' % database)
        server = pgbouncer.PgBouncer(program, postgres_cluster).start(
            dict((database, database) for database in PGBOUNCER_DATABASES.values()),
            pool_sizes={PGBOUNCER_DATABASES["master"]: 2 * pgbouncer.STRESS_THREADS})
    except (pg_cluster.ClusterError, pgbouncer.PgBouncerError) as error:
        pgbouncer_unavailable = "the throwaway PgBouncer did not start: %s" % error
        return {}
    pgbouncer_server, pgbouncer_unavailable = server, None
    engine = postgres_engine()
    databases = {}
    for name, database in PGBOUNCER_DATABASES.items():
        databases[PGBOUNCER_ROLES[name]] = {
            "ENGINE": engine,
            "NAME": database,
            "USER": pgbouncer.USER,
            "HOST": pgbouncer.HOST,
            "PORT": str(server.port),
        }
    return databases


def stop_pgbouncer():
    if pgbouncer_server is not None:
        pgbouncer_server.stop()


class ServerKind(object):
    """One kind of server database of the suite: its aliases by role, its mark, and whether it
    runs (``unavailable()`` is None) or why not."""

    def __init__(self, name, roles, mark, require_variable, unavailable):
        self.name, self.roles, self.mark = name, roles, mark
        self.require_variable = require_variable
        self.unavailable = unavailable

    @property
    def required(self):
        return os.environ.get(self.require_variable) == "1"


SERVER_KINDS = (
    ServerKind("postgres", POSTGRES_ROLES, requires_postgres, "CONNLOCAL_SHIM_REQUIRE_POSTGRES",
               lambda: postgres_unavailable),
    ServerKind("mysql", MYSQL_ROLES, requires_mysql, "CONNLOCAL_SHIM_REQUIRE_MYSQL",
               lambda: mysql_unavailable),
    ServerKind("pgbouncer", PGBOUNCER_ROLES, requires_pgbouncer,
               "CONNLOCAL_SHIM_REQUIRE_PGBOUNCER", lambda: pgbouncer_unavailable),
)


def start_servers():
    """Every server database of the suite, started, as DATABASES entries (conftest)."""
    databases = start_postgres()
    databases.update(start_pgbouncer())
    databases.update(start_mysql())
    return databases


def stop_servers():
    """Stop what start_servers() started, PgBouncer before the cluster behind it."""
    stop_pgbouncer()
    stop_mysql()
    stop_postgres()


def postgresql_backend():
    """(module, what it needs) of the built-in PostgreSQL backend of this Django: the one
    postgres_engine() names. Up to Django 2.2, postgresql_psycopg2; Django 3.0 removed that
    module, and there its absence is not a missing driver: the backend is postgresql, which
    takes psycopg 3 too since Django 4.2."""
    engine = postgres_engine()
    if engine.endswith("postgresql_psycopg2"):
        return engine + ".base", "psycopg2 (psycopg2-binary)"
    return engine + ".base", "psycopg2 (psycopg2-binary) or, since Django 4.2, psycopg 3"


# Backend modules of this Django whose DatabaseWrapper must lose threading.local, and what each
# needs: every module listed exists in this Django, so a backend that cannot load lacks what is
# named here (its driver, a C library), never the module itself.
BACKENDS = (
    ("django.db.backends.sqlite3.base", "the sqlite3 module"),
    postgresql_backend(),
    ("django.db.backends.mysql.base", "MySQLdb (mysqlclient), or PyMySQL installed as MySQLdb"),
    ("django.db.backends.oracle.base", "cx_Oracle (oracledb since Django 5.0)"),
    ("django.db.backends.dummy.base", "nothing"),
    ("django.contrib.gis.db.backends.postgis.base",
     "psycopg2 and the GEOS library (and, on newer Djangos, GDAL)"),
    ("django.contrib.gis.db.backends.mysql.base",
     "MySQLdb and the GEOS library (and, on newer Djangos, GDAL)"),
    ("django.contrib.gis.db.backends.oracle.base",
     "cx_Oracle (oracledb since Django 5.0) and the GEOS library (and, on newer Djangos, GDAL)"),
    ("django.contrib.gis.db.backends.spatialite.base",
     "the GEOS library (and, on newer Djangos, GDAL)"),
)
# Where the backport runs, CI installs every driver: a backend that cannot load is a failure.
REQUIRE_BACKENDS = os.environ.get("CONNLOCAL_SHIM_REQUIRE_BACKENDS") == "1"
backend_errors = {}


def load_backends():
    """Import every backend of BACKENDS that can load here (before install, as a site would
    have them loaded); remember why the others could not."""
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        try:
            import pymysql

            pymysql.install_as_MySQLdb()
        except ImportError:
            pass
    for module_name, _ in BACKENDS:
        if not django_has_module(module_name):
            backend_errors[module_name] = "this Django has no module %s: not a missing driver, " \
                "a wrong entry in tests/support.py BACKENDS" % module_name
            continue
        try:
            __import__(module_name)
        except Exception as error:  # reported by the test of that backend
            backend_errors[module_name] = "%s: %s" % (type(error).__name__, error)


def django_has_module(module_name):
    """Whether this Django ships ``module_name`` (looked up on disk: importing it would load
    its driver)."""
    import django

    parts = module_name.split(".")[1:]
    path = os.path.join(os.path.dirname(django.__file__), *parts)
    return os.path.isfile(path + ".py") or os.path.isfile(os.path.join(path, "__init__.py"))


def start_django():
    """What a site's startup does with INSTALLED_APPS: django.setup() on Django 1.7+, the app
    cache loading every app's models module before."""
    import django

    if hasattr(django, "setup"):
        django.setup()
    else:
        from django.db.models.loading import get_apps

        get_apps()


class UnknownStorage(object):
    """A storage for django.db.connections that no Django release has used: install() must
    refuse it and patch nothing."""


def start_django_with_unknown_storage():
    """Configure and start Django as a site does, django.db.connections holding an
    UnknownStorage: connlocal_shim's install from INSTALLED_APPS refuses (its warning is
    silenced here; the tests of the refusal read it)."""
    import warnings

    configure()
    from django.db import connections

    connections._connections = UnknownStorage()
    warnings.simplefilter("ignore")
    start_django()


def original_features():
    """The features record taken before install (after install, Django looks native)."""
    import connlocal_shim
    from connlocal_shim.features import detect

    if connlocal_shim.is_installed():
        return connlocal_shim.backport._installation.features
    return detect()


class ThreadResult(object):
    """Runs ``func`` in a real thread; ``result()`` joins it and re-raises what it raised."""

    def __init__(self, func, *args, **kwargs):
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(func, args, kwargs))
        self.thread.daemon = True
        self.thread.start()

    def _run(self, func, args, kwargs):
        try:
            self.value = func(*args, **kwargs)
        except BaseException as error:  # handed to the test thread by result()
            self.error = error

    def result(self, timeout=60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "thread did not finish in %ss" % timeout
        if self.error is not None:
            raise self.error
        return self.value


def in_thread(func, *args, **kwargs):
    """Run ``func`` in a new real thread and return what it returned (or raise what it raised)."""
    return ThreadResult(func, *args, **kwargs).result()


def run_python(code, expect_ok=True):
    """Run ``code`` in a fresh interpreter (as a site's process starts) and return its stdout.

    The code can import ``support`` to configure Django; it runs with the tests directory on
    sys.path and the installed connlocal_shim.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([HERE] + [p for p in [env.get("PYTHONPATH")] if p])
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=HERE,
    )
    out, err = process.communicate()
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if expect_ok:
        assert process.returncode == 0, "subprocess failed:\n%s\n%s" % (out, err)
    return out, err, process.returncode


class Finished(object):
    """What run_process() saw: ``out`` and ``err`` (text), ``returncode``, and ``timed_out``."""

    def __init__(self, command, out, err, returncode, timed_out, timeout):
        self.command, self.out, self.err = command, out, err
        self.returncode, self.timed_out, self.timeout = returncode, timed_out, timeout

    def describe(self):
        """The command, how it ended and its output, for an assertion message."""
        how = ("killed after %ss (it hung)" % self.timeout) if self.timed_out \
            else "exit status %s" % self.returncode
        return "%s: %s\n--- stdout:\n%s\n--- stderr:\n%s" % (
            " ".join(self.command), how, self.out[-6000:], self.err[-6000:])


def run_process(command, timeout, env=None, cwd=HERE):
    """Run ``command`` (a list) as a site's process starts, with the tests directory on
    PYTHONPATH and ``env`` added to this environment, and return a Finished. A process still
    running after ``timeout`` seconds is killed with its whole process group (``timed_out``):
    a hang is a failure of the test, never a hung run."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [HERE] + [p for p in [full_env.get("PYTHONPATH")] if p])
    full_env.update(env or {})
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd,
        preexec_fn=os.setsid,
    )
    timed_out = []

    def kill():
        timed_out.append(True)
        try:
            os.killpg(process.pid, 9)
        except OSError:
            pass  # ended meanwhile

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        out, err = process.communicate()
    finally:
        timer.cancel()
    return Finished(
        list(command), out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
        process.returncode, bool(timed_out), timeout,
    )


def commit(alias="default"):
    """Commit what the current thread wrote through ``alias``, on any Django: before Django 1.6
    writes outside a managed transaction are committed by commit_unless_managed(), since 1.6
    connections are in autocommit mode."""
    from django.db import connections, transaction

    wrapper = connections[alias]
    if getattr(wrapper, "get_autocommit", None) is not None and wrapper.get_autocommit():
        return
    transaction.commit_unless_managed(using=alias)


def rollback(alias="default"):
    """Roll back what the current thread's transaction on ``alias`` holds (after a failed
    statement, say), on any Django: before Django 1.6 with rollback_unless_managed(), since 1.6
    a failed statement in autocommit mode leaves no transaction behind."""
    from django.db import connections, transaction

    wrapper = connections[alias]
    if getattr(wrapper, "get_autocommit", None) is not None and wrapper.get_autocommit():
        return
    transaction.rollback_unless_managed(using=alias)


def execute(sql, params=(), alias="default", fetch=False):
    from django.db import connections

    cursor = connections[alias].cursor()
    cursor.execute(sql, params)
    return cursor.fetchall() if fetch else None


def query(wrapper, sql, params=()):
    """Run ``sql`` through ``wrapper`` (any DatabaseWrapper) and return all rows as tuples."""
    cursor = wrapper.cursor()
    cursor.execute(sql, params)
    return [tuple(row) for row in cursor.fetchall()]
