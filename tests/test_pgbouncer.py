"""What Django does behind PgBouncer in transaction pooling mode, and what docs/databases.rst
("PgBouncer") tells a site to set, checked through this process's PgBouncer (tests/pgbouncer.py)
and, for the time zone, on the PostgreSQL cluster directly too.

- Before Django 1.6 a connection is never in autocommit mode: its first query, a read too, opens
  a transaction that stays open until a commit or the connection's close, and holds one of the
  pool's server connections all that time. ``OPTIONS = {"autocommit": True}`` (Django 1.2-1.5)
  gives the server connection back after each statement outside a managed block.
- Django 1.2/1.3 set the connection's time zone with ``SET TIME ZONE`` inside its first
  transaction, and lose it when that transaction rolls back (Django ticket #17062; fixed in 1.4,
  which sets it in autocommit mode). A database whose own default is the site's TIME_ZONE
  (``ALTER DATABASE ... SET timezone``) has it on every connection, whatever Django sends.
"""
import threading

import pytest

import servers
import support
from support import ThreadResult

# Connections created for these tests go to databases of their own, so that the pool counts
# are theirs alone.
READS_DATABASE = "bouncer_reads"
TIME_ZONE_DATABASE = "tz_site"  # ALTER DATABASE ... SET timezone: the advice


@pytest.fixture(scope="module")
def databases():
    cluster = support.postgres_cluster
    if cluster is None:  # the requires_* marks have skipped (or failed) the test already
        pytest.skip(support.postgres_unavailable)
    from django.conf import settings

    cluster._psql('CREATE DATABASE "%s"' % READS_DATABASE)
    cluster._psql('CREATE DATABASE "%s"' % TIME_ZONE_DATABASE)
    cluster._psql("ALTER DATABASE \"%s\" SET timezone TO '%s'" % (
        TIME_ZONE_DATABASE, settings.TIME_ZONE))
    return cluster


def runs_in_autocommit(alias):
    """Whether Django keeps this alias's connection in autocommit mode outside transactions:
    always since Django 1.6 (get_autocommit), with OPTIONS autocommit before."""
    from django.db import connections

    wrapper = connections[alias]
    if getattr(wrapper, "get_autocommit", None) is not None:
        return wrapper.get_autocommit()
    return bool(getattr(wrapper.features, "uses_autocommit", False))


def read_then_park(alias):
    """In a thread: one read through ``alias``, then wait, the connection open and nothing
    committed, as a view that read and went on to render a template. Returns (thread, release
    event, its server backend) once the read is done."""
    done, release = threading.Event(), threading.Event()
    backend = []

    def read():
        from django.db import connections

        backend.append(support.execute("SELECT pg_backend_pid()", alias=alias, fetch=True)[0][0])
        done.set()
        release.wait(60)
        connections[alias].close()

    thread = ThreadResult(read)
    assert done.wait(60), "the read did not finish in 60s"
    return thread, release, backend[0]


def held_server_connections(database):
    """(server connections PgBouncer lends out now, states of the cluster's backends for
    ``database``)."""
    pool = support.pgbouncer_server.pools().get(database, {})
    states = sorted(row[0] for row in servers.postgres_fetch(
        "SELECT state FROM pg_stat_activity WHERE datname = %s", [database]))
    return pool.get("sv_active", 0), states


def check_read(alias):
    thread, release, backend = read_then_park(alias)
    try:
        active, states = held_server_connections(READS_DATABASE)
        (state,), = servers.postgres_fetch(
            "SELECT state FROM pg_stat_activity WHERE pid = %s", [backend])
    finally:
        release.set()
        thread.result()
    return active, state, states


@support.requires_pgbouncer
def test_a_read_holds_a_pooled_server_connection_where_django_leaves_its_transaction_open(
        databases):
    with servers.extra_alias("pgb_reads", "pgb_master", NAME=READS_DATABASE) as alias:
        active, state, states = check_read(alias)
        if runs_in_autocommit(alias):  # Django 1.6+
            assert (active, state) == (0, "idle"), \
                "in autocommit mode the server connection goes back to the pool"
        else:  # Django 1.2-1.5, as they ship
            assert (active, state) == (1, "idle in transaction"), (
                "the read left its transaction open, holding a server connection: %s" % states)


@support.requires_pgbouncer
def test_options_autocommit_gives_the_server_connection_back_before_django_16(databases):
    from django.db import transaction

    if hasattr(transaction, "atomic"):
        pytest.skip("Django 1.6+ runs in autocommit mode already (and drops the option)")
    with servers.extra_alias("pgb_reads_autocommit", "pgb_master", NAME=READS_DATABASE,
                             OPTIONS={"autocommit": True}) as alias:
        active, state, _ = check_read(alias)
        assert (active, state) == (0, "idle"), "autocommit: nothing held after the read"

        # Managed blocks still are transactions (the wrapper leaves autocommit for them).
        support.execute("CREATE TABLE IF NOT EXISTS advice (x INTEGER)", alias=alias)
        support.execute("DELETE FROM advice", alias=alias)
        with servers.transaction(alias):  # rolled back
            support.execute("INSERT INTO advice VALUES (1)", alias=alias)
        with servers.transaction(alias, commit=True):
            support.execute("INSERT INTO advice VALUES (2)", alias=alias)
        assert support.execute("SELECT x FROM advice", alias=alias, fetch=True) == [(2,)]


def time_zone_after_a_rolled_back_first_transaction(alias):
    """In a new thread (a new connection): a first transaction that rolls back, then the
    connection's time zone."""

    def fresh_connection():
        from django.db import connections

        try:
            with servers.transaction(alias):
                support.execute("SELECT 1", alias=alias)
            (zone,), = support.execute("SHOW timezone", alias=alias, fetch=True)
            support.commit(alias)
            return zone
        finally:
            connections[alias].close()

    return support.in_thread(fresh_connection)


def sets_time_zone_in_autocommit():
    """Whether Django sets a new connection's time zone outside its first transaction: since
    Django 1.4 (ticket #17062), whose operations have set_time_zone_sql()."""
    from django.db import connections

    return hasattr(connections["pg_master"].ops, "set_time_zone_sql")


over_postgres_and_pgbouncer = support.parametrize_over_databases(kinds=("postgres", "pgbouncer"))


@over_postgres_and_pgbouncer
def test_django_12_13_lose_the_time_zone_when_the_first_transaction_rolls_back(aliases, databases):
    from django.conf import settings

    (server_default,), = servers.postgres_fetch("SHOW timezone")
    assert server_default != settings.TIME_ZONE, "the test needs a server zone of its own"
    zone = time_zone_after_a_rolled_back_first_transaction(aliases["audit"])
    if sets_time_zone_in_autocommit():
        assert zone == settings.TIME_ZONE
    else:
        assert zone == server_default, "Django 1.2/1.3: the SET TIME ZONE was rolled back"


@over_postgres_and_pgbouncer
def test_a_database_default_time_zone_survives_the_rollback(aliases, databases):
    from django.conf import settings

    name = "%s_tz_site" % aliases["audit"]
    with servers.extra_alias(name, aliases["audit"], NAME=TIME_ZONE_DATABASE) as alias:
        assert time_zone_after_a_rolled_back_first_transaction(alias) == settings.TIME_ZONE
