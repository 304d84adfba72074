"""The thread semantics of test_handler, test_wrappers and test_backport on a server database:
the throwaway PostgreSQL cluster of this test process (tests/pg_cluster.py), whose databases
master, replica and audit are the aliases pg_master, pg_replica and pg_audit."""
import gc
import threading
import time

import pytest

import connlocal_shim
import support
from support import ThreadResult, in_thread, requires_postgres
from test_backport import reinstall  # noqa: F401 (a fixture)
from test_backport import requires_backport
from test_wrappers import share, unshare

# Known before the cluster starts, unlike support.POSTGRES_ALIASES: where there is no server the
# tests are collected all the same, and skipped with the reason.
ALIASES = sorted(support.POSTGRES_ROLES.values())


def connections():
    from django.db import connections

    return connections


def end_transaction(alias):
    """Before Django 1.6 the first query opens a transaction that stays open, with its locks and
    its snapshot of pg_stat_activity, until a commit: end it as the end of a request would."""
    support.commit(alias)


def close_connections():
    """Close the calling thread's connections, so that none outlives its thread."""
    handler = connections()
    for alias in handler:
        handler[alias].close()


def in_closing_thread(func, *args):
    """in_thread(func, *args), the thread closing its connections before it ends."""

    def run_then_close():
        try:
            return func(*args)
        finally:
            close_connections()

    return in_thread(run_then_close)


class ParkedThreads(object):
    """Runs ``func(index)`` in ``count`` real threads at once; each thread then waits, its
    connections open, until the ``with`` block ends, closes them and ends::

        with ParkedThreads(8, work) as parked:
            values = parked.values()      # what each func returned, all threads still alive
    """

    def __init__(self, count, func):
        self.func = func
        self.returned = {}
        self.arrived = [threading.Event() for _ in range(count)]
        self.released = threading.Event()
        self.threads = [ThreadResult(self._run, index) for index in range(count)]

    def _run(self, index):
        try:
            self.returned[index] = self.func(index)
        finally:
            self.arrived[index].set()
            self.released.wait(60)
            close_connections()

    def values(self):
        for event in self.arrived:
            assert event.wait(60), "a thread did not finish its work in 60s"
        if len(self.returned) < len(self.arrived):
            self.finish()  # re-raises what the first failing thread raised
        return [self.returned[index] for index in range(len(self.arrived))]

    def finish(self):
        self.released.set()
        for thread in self.threads:
            thread.result()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is None:
            self.finish()
        else:  # let the threads end, and report the test's own error
            self.released.set()
            for thread in self.threads:
                thread.thread.join(60)
        return False


def server_session(alias):
    """(backend pid, database name) of the calling thread's server connection for ``alias``."""
    (row,) = support.execute("SELECT pg_backend_pid(), current_database()", alias=alias, fetch=True)
    return tuple(row)


# -- the handler: one wrapper, one server connection per thread ----------------------------------

@requires_postgres
@pytest.mark.parametrize("alias", ALIASES)
def test_each_thread_gets_its_own_wrapper_and_server_connection(alias):
    handler = connections()
    mine = handler[alias]
    my_session = server_session(alias)
    end_transaction(alias)

    with ParkedThreads(3, lambda index: (handler[alias], server_session(alias))) as parked:
        theirs = parked.values()
    wrappers = [mine] + [wrapper for wrapper, _ in theirs]
    sessions = [my_session] + [session for _, session in theirs]
    assert len(set(id(wrapper) for wrapper in wrappers)) == 4, "a wrapper per thread"
    assert len(set(pid for pid, _ in sessions)) == 4, "a server connection per thread"
    assert set(database for _, database in sessions) == set([handler[alias].settings_dict["NAME"]])
    assert handler[alias] is mine and server_session(alias) == my_session
    end_transaction(alias)


@support.parametrize_over_databases()
def test_assigning_an_alias_routes_the_calling_threads_queries_to_the_other_database(aliases):
    handler = connections()
    master, replica = aliases["master"], aliases["replica"]
    support.execute("CREATE TABLE IF NOT EXISTS only_in_master (x INTEGER)", alias=master)
    support.commit(master)
    main_replica = handler[replica]

    def tables(alias):
        names = handler[alias].introspection.table_names()
        end_transaction(alias)
        return names

    def repoint():
        handler[replica] = handler[master]
        return handler[replica].alias, tables(replica)

    alias, found = in_closing_thread(repoint)
    assert alias == master
    assert "only_in_master" in found, "queries through the replica alias must reach master"
    assert handler[replica] is main_replica
    assert "only_in_master" not in tables(replica)


# -- thread sharing ------------------------------------------------------------------------------

@requires_postgres
def test_an_unshared_wrapper_refuses_other_threads():
    from django.db.utils import DatabaseError

    wrapper = connections()["pg_master"]
    session = server_session("pg_master")
    with pytest.raises(DatabaseError) as raised:
        in_thread(wrapper.cursor)
    assert "can only be used in that same thread" in str(raised.value)
    assert server_session("pg_master") == session, "the refusal must leave the connection alone"
    end_transaction("pg_master")


@requires_postgres
def test_a_shared_wrapper_is_used_from_another_thread_on_the_same_server_connection():
    wrapper = connections()["pg_master"]
    session = server_session("pg_master")
    share(wrapper)
    try:
        assert in_thread(support.query, wrapper, "SELECT pg_backend_pid(), current_database()") \
            == [session]
    finally:
        unshare(wrapper)
    end_transaction("pg_master")


# -- installing late -----------------------------------------------------------------------------

@requires_postgres
@requires_backport
def test_installing_late_keeps_the_server_session_and_its_transaction(reinstall):  # noqa: F811
    from django.db import transaction

    connlocal_shim.uninstall()
    old = connections()["pg_master"]
    # A temporary table lives in one server session: finding the row again proves the session.
    support.execute("CREATE TEMPORARY TABLE IF NOT EXISTS late (x INTEGER)", alias="pg_master")
    support.execute("DELETE FROM late", alias="pg_master")
    transaction.commit_unless_managed(using="pg_master")
    transaction.enter_transaction_management(using="pg_master")
    transaction.managed(True, using="pg_master")
    try:
        support.execute("INSERT INTO late VALUES (1)", alias="pg_master")
        transaction.set_dirty(using="pg_master")
        dbapi = old.connection
        before = support.query(old, "SELECT pg_backend_pid(), txid_current()")

        connlocal_shim.install()
        new = connections()["pg_master"]
        assert new is not old and threading.local not in type(new).__mro__
        assert new.connection is dbapi, "the open connection must move to the new wrapper"
        assert support.query(new, "SELECT pg_backend_pid(), txid_current()") == before, \
            "the same server session, in the same transaction"
        assert transaction.is_managed(using="pg_master")
        assert transaction.is_dirty(using="pg_master")
        assert support.query(new, "SELECT x FROM late") == [(1,)]
        transaction.rollback(using="pg_master")
        assert support.query(new, "SELECT x FROM late") == []
    finally:
        transaction.rollback(using="pg_master")
        transaction.leave_transaction_management(using="pg_master")


# -- many threads at once ------------------------------------------------------------------------

THREADS, QUERIES = 8, 100


def stress_name(index):
    return "connlocal-shim-stress-%d" % index


def server_connections_named(names):
    """(application_name, pid) of the server connections to master with one of ``names``."""
    rows = support.execute(
        "SELECT application_name, pid FROM pg_stat_activity"
        " WHERE datname = 'master' AND application_name = ANY(%s)",
        [list(names)], alias="pg_master", fetch=True,
    )
    end_transaction("pg_master")
    return sorted(tuple(row) for row in rows)


@requires_postgres
def test_threads_run_their_queries_each_on_its_own_server_connection():
    handler = connections()
    start = threading.Event()

    def work(index):
        name = stress_name(index)
        assert start.wait(60)
        wrapper = handler["pg_master"]
        support.execute("SET application_name = %s", [name], alias="pg_master")
        (pid,) = support.execute("SELECT pg_backend_pid()", alias="pg_master", fetch=True)[0]
        # Temporary tables are per server session: another thread's rows would show here.
        support.execute(
            "CREATE TEMPORARY TABLE mine (thread INTEGER, n INTEGER)", alias="pg_master"
        )
        for n in range(QUERIES):
            support.execute("INSERT INTO mine VALUES (%s, %s)", [index, n], alias="pg_master")
            rows = support.execute(
                "SELECT count(*), min(thread), max(thread), current_setting('application_name'),"
                " pg_backend_pid() FROM mine",
                alias="pg_master", fetch=True,
            )
            assert [tuple(row) for row in rows] == [(n + 1, index, index, name, pid)]
            assert handler["pg_master"] is wrapper
        return name, pid

    names = [stress_name(index) for index in range(THREADS)]
    with ParkedThreads(THREADS, work) as parked:
        start.set()
        sessions = sorted(parked.values())
        assert len(set(pid for _, pid in sessions)) == THREADS
        assert server_connections_named(names) == sessions, \
            "one server connection per live thread, and none other"

    # The server ends a backend shortly after its client closed the socket; nothing signals it
    # to us, so ask until it is gone.
    deadline = time.time() + 30
    while server_connections_named(names) and time.time() < deadline:
        time.sleep(0.05)
    assert server_connections_named(names) == [], "a closed connection's backend must end"


@requires_postgres
@requires_backport
def test_threads_that_end_without_closing_leave_no_server_connection():
    # Django 1.2/1.3 closed a thread's connection with its threading.local state. The backport's
    # wrappers refer to themselves, so without ThreadEnd their connections would wait for the
    # cycle collector (as on Django 1.4), which is off here.
    handler = connections()

    def open_and_leave(index):
        support.execute("SET application_name = %s", [stress_name(index)], alias="pg_master")
        end_transaction("pg_master")
        return handler["pg_master"]

    names = [stress_name(index) for index in range(THREADS)]
    enabled = gc.isenabled()
    gc.disable()
    try:
        wrappers = [ThreadResult(open_and_leave, index) for index in range(THREADS)]
        wrappers = [worker.result() for worker in wrappers]  # alive: only the thread ended
        deadline = time.time() + 30
        while server_connections_named(names) and time.time() < deadline:
            time.sleep(0.05)
        assert server_connections_named(names) == [], \
            "a thread that ended must leave no server connection behind"
        assert [wrapper.connection for wrapper in wrappers] == [None] * THREADS
    finally:
        if enabled:
            gc.enable()
