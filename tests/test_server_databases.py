"""The thread semantics of test_handler, test_wrappers and test_backport on server databases: the
throwaway PostgreSQL cluster of this test process (tests/pg_cluster.py; aliases pg_master,
pg_replica, pg_audit), the same cluster through a PgBouncer in transaction pooling mode
(tests/pgbouncer.py; pgb_master...) and a throwaway MariaDB (tests/mariadb_server.py;
my_master...). Each test runs on every kind (support.parametrize_over_databases); tests/servers.py
says how each kind names a client connection and lists those it has."""
import gc
import threading

import pytest

import connlocal_shim
import servers
import support
from support import ThreadResult, in_thread
from test_backport import reinstall  # noqa: F401 (a fixture)
from test_backport import HeldInCursor, requires_backport
from test_wrappers import share, unshare

SERVER_KINDS = ("postgres", "pgbouncer", "mysql")
over_servers = support.parametrize_over_databases(kinds=SERVER_KINDS)


def connections():
    from django.db import connections

    return connections


def end_transaction(alias):
    """Before Django 1.6 the first query opens a transaction that stays open, with its locks and
    its snapshot, until a commit: end it as the end of a request would."""
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


def session_now(alias):
    """servers.session(alias), the transaction it may have opened ended."""
    found = servers.session(alias)
    end_transaction(alias)
    return found


# -- the handler: one wrapper, one server connection per thread ----------------------------------

@over_servers
@pytest.mark.parametrize("role", ["master", "replica", "audit"])
def test_each_thread_gets_its_own_wrapper_and_server_connection(aliases, role):
    alias = aliases[role]
    handler = connections()
    mine = handler[alias]
    my_session = session_now(alias)

    with ParkedThreads(3, lambda index: (handler[alias], session_now(alias))) as parked:
        theirs = parked.values()
        connected = servers.sessions(alias)
    wrappers = [mine] + [wrapper for wrapper, _ in theirs]
    sessions = [my_session] + [session for _, session in theirs]
    assert len(set(id(wrapper) for wrapper in wrappers)) == 4, "a wrapper per thread"
    assert len(set(sessions)) == 4, "a server connection per thread"
    assert set(sessions) <= connected, "the server lists each of them, on this alias's database"
    assert handler[alias] is mine and session_now(alias) == my_session


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

@over_servers
def test_an_unshared_wrapper_refuses_other_threads(aliases):
    from django.db.utils import DatabaseError

    alias = aliases["master"]
    wrapper = connections()[alias]
    session = session_now(alias)
    with pytest.raises(DatabaseError) as raised:
        in_thread(wrapper.cursor)
    assert "can only be used in that same thread" in str(raised.value)
    assert session_now(alias) == session, "the refusal must leave the connection alone"


@over_servers
def test_a_shared_wrapper_is_used_from_another_thread_on_the_same_server_connection(aliases):
    alias = aliases["master"]
    wrapper = connections()[alias]
    session = session_now(alias)
    share(wrapper)
    try:
        assert in_thread(servers.session_of, wrapper) == session
    finally:
        unshare(wrapper)
    end_transaction(alias)


# -- installing late -----------------------------------------------------------------------------

@over_servers
@requires_backport
@pytest.mark.parametrize("change", ["uninstall", "install"])
def test_the_change_waits_for_a_thread_opening_its_server_connection(aliases, reinstall, change):  # noqa: F811,E501
    if change == "install":
        connlocal_shim.uninstall()
    with HeldInCursor(aliases["master"]) as held:
        changer = ThreadResult(getattr(connlocal_shim, change))
        changer.thread.join(0.5)
        assert changer.thread.is_alive(), (
            "%s() was done while another thread was inside _cursor()" % change
        )
        held.release()
        changer.result(30)
    assert held.errors == []
    assert connlocal_shim.is_installed() is (change == "install")


@over_servers
@requires_backport
def test_installing_late_keeps_the_server_session_and_its_transaction(aliases, reinstall):  # noqa: F811,E501
    from django.db import transaction

    alias = aliases["master"]
    backend_id = "SELECT %s" % servers.backend_id_sql(alias)
    connlocal_shim.uninstall()
    old = connections()[alias]
    support.execute("CREATE TABLE IF NOT EXISTS late_install (x INTEGER)", alias=alias)
    support.execute("DELETE FROM late_install", alias=alias)
    transaction.commit_unless_managed(using=alias)
    transaction.enter_transaction_management(using=alias)
    transaction.managed(True, using=alias)
    try:
        # A row not committed is seen by its own transaction only (and, through PgBouncer, the
        # transaction keeps its server connection): finding it again proves both.
        support.execute("INSERT INTO late_install VALUES (1)", alias=alias)
        transaction.set_dirty(using=alias)
        dbapi = old.connection
        before = support.query(old, backend_id)

        connlocal_shim.install()
        new = connections()[alias]
        assert new is not old and threading.local not in type(new).__mro__
        assert new.connection is dbapi, "the open connection must move to the new wrapper"
        assert support.query(new, backend_id) == before, "the same server session"
        assert transaction.is_managed(using=alias)
        assert transaction.is_dirty(using=alias)
        assert support.query(new, "SELECT x FROM late_install") == [(1,)]
        transaction.rollback(using=alias)
        assert support.query(new, "SELECT x FROM late_install") == []
    finally:
        transaction.rollback(using=alias)
        transaction.leave_transaction_management(using=alias)


# -- many threads at once ------------------------------------------------------------------------

THREADS, QUERIES = 8, 100

TEMPORARY_TABLE = {
    # Dropped with the transaction: through PgBouncer the next one may run on another server
    # connection, which never had it.
    "postgres": "CREATE TEMPORARY TABLE mine (thread INTEGER, n INTEGER) ON COMMIT DROP",
    "pgbouncer": "CREATE TEMPORARY TABLE mine (thread INTEGER, n INTEGER) ON COMMIT DROP",
    # Creating or dropping a temporary table does not end MariaDB's transaction.
    "mysql": "CREATE TEMPORARY TABLE mine (thread INTEGER, n INTEGER)",
}


@over_servers
def test_threads_run_their_queries_each_on_its_own_server_connection(aliases):
    alias = aliases["master"]
    kind = support.database_kind(alias)
    handler = connections()
    start = threading.Event()
    session_now(alias)
    before = servers.sessions(alias)

    def work(index):
        assert start.wait(60)
        wrapper = handler[alias]
        with servers.transaction(alias):
            session = servers.session(alias)
            backend = support.execute("SELECT %s" % servers.backend_id_sql(alias),
                                      alias=alias, fetch=True)[0][0]
            # Temporary tables are per server session: another thread's rows would show here.
            support.execute(TEMPORARY_TABLE[kind], alias=alias)
            for n in range(QUERIES):
                support.execute("INSERT INTO mine VALUES (%s, %s)", [index, n], alias=alias)
                rows = support.execute(
                    "SELECT count(*), min(thread), max(thread), %s FROM mine"
                    % servers.backend_id_sql(alias), alias=alias, fetch=True)
                assert [tuple(row) for row in rows] == [(n + 1, index, index, backend)]
                assert handler[alias] is wrapper
            if kind == "mysql":
                support.execute("DROP TEMPORARY TABLE mine", alias=alias)
        return session

    with ParkedThreads(THREADS, work) as parked:
        start.set()
        sessions = set(parked.values())
        assert len(sessions) == THREADS
        assert servers.sessions(alias) - before == sessions, \
            "one server connection per live thread, and none other"

    gone = servers.wait_for_sessions(alias, lambda found: not (found - before))
    assert gone - before == set(), "a closed connection must leave the server's list"


@over_servers
@requires_backport
def test_threads_that_end_without_closing_leave_no_server_connection(aliases):
    # Django 1.2/1.3 dropped a thread's connection with its threading.local state, and the
    # DB-API connection closed as its last reference went. The backport's wrappers refer to
    # themselves, so if the backport kept the wrapper's reference to the connection at thread
    # end, it would wait for the cycle collector (as on Django 1.4), which is off here.
    alias = aliases["master"]
    handler = connections()
    session_now(alias)
    before = servers.sessions(alias)

    def open_and_leave(index):
        session = session_now(alias)
        return handler[alias], session

    enabled = gc.isenabled()
    gc.disable()
    try:
        ended = [ThreadResult(open_and_leave, index) for index in range(THREADS)]
        ended = [worker.result() for worker in ended]  # the wrappers alive: only threads ended
        sessions = set(session for _, session in ended)
        assert len(sessions) == THREADS
        left = servers.wait_for_sessions(alias, lambda found: not (found & sessions))
        assert left & sessions == set(), \
            "a thread that ended must leave no server connection behind"
        assert [wrapper.connection for wrapper, _ in ended] == [None] * THREADS
    finally:
        if enabled:
            gc.enable()


@over_servers
def test_a_connection_held_elsewhere_outlives_its_thread_and_its_holder_closes_it(aliases):
    # Code that collected connection.connection (a pool of its own, a debugging aid) owns a
    # reference: as on unpatched Django 1.2/1.3, the thread's end must not close it under it,
    # and its holder must be able to use it and to close it, once.
    alias = aliases["master"]
    held = []

    def collect():
        session = session_now(alias)
        held.append(connections()[alias].connection)
        return session

    session = in_thread(collect)
    (dbapi,) = held
    cursor = dbapi.cursor()
    cursor.execute("SELECT %s" % servers.backend_id_sql(alias))
    if support.database_kind(alias) != "pgbouncer":
        assert cursor.fetchall()[0][0] == session, "the thread's own server session"
    cursor.close()
    dbapi.rollback()
    assert session in servers.sessions(alias), "still connected after its thread ended"
    dbapi.close()
    left = servers.wait_for_sessions(alias, lambda found: session not in found)
    assert session not in left, "closed by its holder"
