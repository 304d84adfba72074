"""Thread churn in this process: 1,000 short-lived threads, at most ALIVE at once, each querying
a server database, as the threads of a server that recycles them do: the throwaway PostgreSQL
cluster, the same through PgBouncer in transaction pooling mode, and the throwaway MariaDB (one
test each; tests/servers.py says how each names its client connections). A quarter each:
through ``connections[alias]``, closing it at the end (as Django's request_finished does) or
not; through ``django.db.connection`` inside ``route_connections(default=alias)``, with
close_connections=True or not.

On Django 1.2/1.3 this runs on the backport, which tests/conftest.py installs as a site does
(INSTALLED_APPS); on Django 1.4+ on Django's own thread-local connections. Either way each thread
must get its own wrapper and server session, and once the threads are gone nothing of theirs may
be left: no DatabaseWrapper object (counted through gc) and no server connection.

A wrapper refers to itself (its features, ops, creation... hold it), so one that a thread left
open is freed, and its connection closed, by Python's cyclic garbage collector, not when the
thread ends: natively too. The test collects every GC_EVERY threads, as the collector would in
time, and bounds the open connections by the threads alive plus those ended since.
"""
import collections
import gc
import threading
import time

import connlocal_shim
import pgwatch
import servers
import support

THREADS = 1000
ALIVE = 16  # threads at once
GC_EVERY = 50  # threads started between two gc.collect(): the cluster takes 100 connections
# A server session, unique over the server's life: PostgreSQL reuses pids, not with the same
# start time; MariaDB's connection ids only grow. Through PgBouncer a thread's own connection is
# its client connection (servers.client_address), whose port the kernel may hand out again.
SESSION_SQL = {
    "postgres": "SELECT pg_backend_pid()::text || '@' || backend_start::text FROM pg_stat_activity"
                " WHERE pid = pg_backend_pid()",
    "pgbouncer": "SELECT pg_backend_pid()",
    "mysql": "SELECT CONNECTION_ID()",
}
SAMPLE_EVERY = 0.02  # seconds between two counts of the server's client connections


def is_database_wrapper(obj):
    """Any DatabaseWrapper: Django's own classes, the backport's rebuilt ones, and the captured
    references it redirects (classes are told by name: the backport rebuilds them)."""
    return any(klass.__name__ == "BaseDatabaseWrapper" for klass in type(obj).__mro__)


def count_wrappers():
    gc.collect()
    return sum(1 for obj in gc.get_objects() if is_database_wrapper(obj))


def query(index, alias):
    """One thread's work: (id of the wrapper it used, its server session)."""
    from django.db import connection, connections

    kind = support.database_kind(alias)
    close = index % 4 in (0, 2)
    if index % 4 < 2:
        wrapper = connections[alias]
        session = support.query(wrapper, SESSION_SQL[kind])[0][0]
        if kind == "pgbouncer":
            session = servers.client_address(wrapper.connection)
        if close:
            wrapper.close()
    else:
        with connlocal_shim.route_connections(close_connections=close, default=alias):
            wrapper = connections["default"]
            cursor = connection.cursor()  # the reference django.db keeps: routed too
            cursor.execute(SESSION_SQL[kind])
            session = cursor.fetchone()[0]
            if kind == "pgbouncer":
                session = servers.client_address(wrapper.connection)
    return id(wrapper), session


class SessionSampler(pgwatch.Sampler):
    """Counts the client connections to the database of ``alias`` every SAMPLE_EVERY seconds in
    a thread, until stopped; keeps the largest count, and through PgBouncer the largest number
    of server connections its pool held."""

    name = "session-sampler"

    def __init__(self, alias, limit=900):
        pgwatch.Sampler.__init__(self, SAMPLE_EVERY, limit)
        self.alias = alias
        self.database = servers.database_name(alias)
        self.max_clients = self.max_servers = 0

    def sample(self):
        self.max_clients = max(self.max_clients, len(servers.sessions(self.alias)))
        if support.database_kind(self.alias) == "pgbouncer":
            pool = support.pgbouncer_server.pools().get(self.database, {})
            held = sum(pool.get(name, 0) for name in (
                "sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
            self.max_servers = max(self.max_servers, held)
        self.samples += 1


class Churn(object):
    """Starts THREADS threads, never more than ALIVE alive: the oldest is joined first."""

    def __init__(self, count, alive, func, timeout=60):
        self.count, self.alive, self.func, self.timeout = count, alive, func, timeout
        self.returned = {}
        self.errors = []

    def _run(self, index):
        try:
            self.returned[index] = self.func(index)
        except Exception as error:  # reported by the test, with the others
            self.errors.append("thread %d: %s: %s" % (index, type(error).__name__, error))

    def run(self):
        running = collections.deque()
        for index in range(self.count):
            if index and index % GC_EVERY == 0:
                gc.collect()
            if len(running) >= self.alive:
                self._join(running.popleft())
            thread = threading.Thread(target=self._run, args=(index,))
            thread.daemon = True
            thread.start()
            running.append(thread)
        while running:
            self._join(running.popleft())

    def _join(self, thread):
        thread.join(self.timeout)
        assert not thread.is_alive(), "a churn thread did not end in %ss" % self.timeout


@support.parametrize_over_databases(kinds=("postgres", "pgbouncer", "mysql"))
def test_a_thousand_short_lived_threads_leave_no_wrapper_nor_connection(aliases, stress_report):
    import django
    from django.db import connections

    alias = aliases["master"]
    kind = support.database_kind(alias)
    backported = bool(support.original_features().missing)
    assert connlocal_shim.is_installed() or not backported, "the backport must be installed"
    main_wrapper = connections[alias]
    support.query(main_wrapper, SESSION_SQL[kind])
    support.commit(alias)
    wrappers_before = count_wrappers()
    sessions_before = len(servers.sessions(alias))

    started = time.time()
    churn = Churn(THREADS, ALIVE, lambda index: query(index, alias))
    with SessionSampler(alias) as sampler:
        churn.run()
    duration = time.time() - started
    wrappers_after = count_wrappers()
    # A server drops a connection a moment after its client freed it.
    sessions_after = len(servers.wait_for_sessions(
        alias, lambda found: len(found) <= sessions_before, timeout=60))

    sessions = [session for _, session in churn.returned.values()]
    report = stress_report.add
    report("Django", "%s, %s, %d patches in place, on %s" % (
        django.get_version(), "backport installed" if backported else "native connections",
        len(connlocal_shim.status()["patches"]), kind))
    report("threads", "%d in %.1fs, at most %d alive, %d failed" % (
        THREADS, duration, ALIVE, len(churn.errors)))
    report("client connections", "%d distinct, at most %d at once (bound %d + %d; %d samples)" % (
        len(set(sessions)), sampler.max_clients, ALIVE, GC_EVERY, sampler.samples))
    pool_size = 0
    if kind == "pgbouncer":
        pool_size = support.pgbouncer_server.pool_sizes.get(
            servers.database_name(alias), support.pgbouncer.POOL_SIZE)
        report("server connections of the pool", "at most %d (pool size %d)" % (
            sampler.max_servers, pool_size))
    report("DatabaseWrapper objects (gc)", "%d before, %d after" % (
        wrappers_before, wrappers_after))
    report("client connections to master", "%d before, %d after" % (
        sessions_before, sessions_after))

    assert not churn.errors, "\n".join(churn.errors[:20])
    assert len(churn.returned) == THREADS
    assert id(main_wrapper) not in set(wrapper for wrapper, _ in churn.returned.values()), \
        "a thread used the main thread's wrapper"
    if kind != "pgbouncer":  # a client port may come back; a server session does not
        assert len(set(sessions)) == THREADS, "each thread must have its own server session"
    assert sampler.max_clients <= ALIVE + GC_EVERY
    assert sampler.max_servers <= pool_size
    assert wrappers_after == wrappers_before, "wrappers left behind by ended threads"
    assert sessions_after == sessions_before, "server connections left behind by ended threads"
