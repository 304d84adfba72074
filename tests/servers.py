"""What each server database of the suite says about its client connections, for the tests that
run on all of them (support.parametrize_over_databases, support.SERVER_KINDS):

    session(alias)       the calling thread's connection for ``alias``, as its server knows it
                         (session_of(wrapper): a given wrapper's connection):
                         PostgreSQL's backend pid, MariaDB's CONNECTION_ID(), and through
                         PgBouncer the client connection (address, port) its SHOW CLIENTS lists
    sessions(alias)      every client connection to the database of ``alias`` now, seen from a
                         connection of the test's own outside Django (pg_stat_activity,
                         information_schema.PROCESSLIST, PgBouncer's SHOW CLIENTS)
    wait_for_sessions(alias, predicate)   polls sessions() (bounded): a server drops a closed
                         connection a moment after its client closed it, and says nothing
    backend_id_sql(alias)  the SQL expression of the server session running a statement
    transaction(alias)   a transaction around a block, on any Django, rolled back or committed
    extra_alias(name, like, **changes)   an alias added to DATABASES for one test
"""
import contextlib
import socket
import threading
import time

import support

# The SQL expression of the server session that runs a statement. Through PgBouncer, that is the
# server connection it lent for the current transaction, not the client's.
BACKEND_ID_SQL = {
    "postgres": "pg_backend_pid()",
    "pgbouncer": "pg_backend_pid()",
    "mysql": "CONNECTION_ID()",
}


def _connections():
    from django.db import connections

    return connections


def kind_of(alias):
    kind = support.database_kind(alias)
    if kind == "sqlite":
        raise ValueError("servers: %r is a sqlite alias, which has no server sessions" % alias)
    return kind


def backend_id_sql(alias):
    return BACKEND_ID_SQL[kind_of(alias)]


def database_name(alias):
    return _connections().databases[alias]["NAME"]


def session(alias):
    """The calling thread's connection for ``alias`` (opened by a query if it was not), as its
    server knows it."""
    return session_of(_connections()[alias])


def session_of(wrapper):
    """The connection of ``wrapper`` (a DatabaseWrapper of a server alias), as its server knows
    it; a query opens it if it was not."""
    kind = kind_of(wrapper.alias)
    value = support.query(wrapper, "SELECT %s" % BACKEND_ID_SQL[kind])[0][0]
    if kind != "pgbouncer":
        return value
    return client_address(wrapper.connection)


def client_address(dbapi_connection):
    """(address, port) of the local end of a psycopg2 connection's socket: what PgBouncer's SHOW
    CLIENTS shows as the client's addr and port."""
    duplicate = socket.fromfd(dbapi_connection.fileno(), socket.AF_INET, socket.SOCK_STREAM)
    try:
        return tuple(duplicate.getsockname()[:2])
    finally:
        duplicate.close()


def sessions(alias):
    """The client connections to the database of ``alias`` now, as session() names them."""
    kind, name = kind_of(alias), database_name(alias)
    if kind == "pgbouncer":
        return set(support.pgbouncer_server.clients(name))
    if kind == "postgres":
        rows = postgres_fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name])
    else:
        rows = mysql_fetch(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
            [name])
    return set(row[0] for row in rows)


def pooled_backends(alias):
    """The PostgreSQL backends PgBouncer holds for the database of a pgbouncer alias now."""
    return set(row[0] for row in postgres_fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s", [database_name(alias)]))


def wait_for_sessions(alias, predicate, timeout=30):
    """Poll sessions(alias) until predicate(found) holds or ``timeout`` seconds pass; return the
    last sessions(alias) seen."""
    deadline = time.time() + timeout
    pause = threading.Event()
    while True:
        found = sessions(alias)
        if predicate(found) or time.time() >= deadline:
            return found
        pause.wait(0.05)


def postgres_fetch(sql, params=()):
    """Rows of one query on the cluster's "postgres" database, on a connection of its own."""
    import psycopg2

    cluster = support.postgres_cluster
    connection = psycopg2.connect(host=support.pg_cluster.HOST, port=cluster.port,
                                  user=support.pg_cluster.SUPERUSER, dbname="postgres",
                                  connect_timeout=10)
    try:
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []
    finally:
        connection.close()


def mysql_connect(**options):
    """A MySQLdb connection of the test's own to the throwaway MariaDB, as root."""
    MySQLdb = support.mysql_driver()
    server = support.mysql_server
    return MySQLdb.connect(host=support.mariadb_server.HOST, port=server.port,
                           user=support.mariadb_server.SUPERUSER, connect_timeout=10, **options)


def mysql_fetch(sql, params=()):
    connection = mysql_connect()
    try:
        connection.autocommit(True)
        cursor = connection.cursor()
        cursor.execute(sql, params or None)
        return cursor.fetchall() if cursor.description is not None else []
    finally:
        connection.close()


@contextlib.contextmanager
def transaction(alias, commit=False):
    """A transaction on ``alias`` around the block, as a view's: transaction.atomic on Django
    1.6+, a managed block before (marked dirty, for the raw writes of the tests); rolled back
    at the end, or committed if ``commit`` and the block did not raise."""
    from django.db import transaction as django_transaction

    atomic = getattr(django_transaction, "atomic", None)
    if atomic is not None:
        with atomic(using=alias):
            yield
            if not commit:
                django_transaction.set_rollback(True, using=alias)
        return
    django_transaction.enter_transaction_management(using=alias)
    django_transaction.managed(True, using=alias)
    try:
        yield
        django_transaction.set_dirty(using=alias)
        if commit:
            django_transaction.commit(using=alias)
        else:
            django_transaction.rollback(using=alias)
    except BaseException:
        django_transaction.rollback(using=alias)
        raise
    finally:
        django_transaction.leave_transaction_management(using=alias)


@contextlib.contextmanager
def extra_alias(name, like, **changes):
    """Add alias ``name`` to DATABASES for the block: the settings of alias ``like`` with
    ``changes`` (OPTIONS, NAME...). The calling thread's connection to it is closed at the end.
    Give each use a name of its own: Django 1.2-1.5 keep a thread's wrapper for an alias until
    the thread ends, with the settings it was made with."""
    from django.conf import settings
    from django.db import connections

    if name in connections.databases:
        raise ValueError("servers.extra_alias: %r is in DATABASES already" % name)
    entry = dict(connections.databases[like])
    for key in ("OPTIONS", "TEST"):
        if key in entry:
            entry[key] = dict(entry[key])
    entry.update(changes)
    for databases in (connections.databases, settings.DATABASES):
        databases[name] = entry
    try:
        yield name
    finally:
        try:
            connections[name].close()
        finally:
            for databases in (connections.databases, settings.DATABASES):
                databases.pop(name, None)
