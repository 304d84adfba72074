"""Thread churn in this process: 1,000 short-lived threads, at most ALIVE at once, each querying
the throwaway PostgreSQL cluster, as the threads of a server that recycles them do. A quarter
each: through ``connections["pg_master"]``, closing it at the end (as Django's request_finished
does) or not; through ``django.db.connection`` inside ``route_connections(default="pg_master")``,
with close_connections=True or not.

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
import support
from support import requires_postgres

THREADS = 1000
ALIVE = 16  # threads at once
GC_EVERY = 50  # threads started between two gc.collect(): the cluster takes 100 connections
SESSION_SQL = (
    "SELECT pg_backend_pid()::text || '@' || backend_start::text FROM pg_stat_activity"
    " WHERE pid = pg_backend_pid()"
)


def is_database_wrapper(obj):
    """Any DatabaseWrapper: Django's own classes, the backport's rebuilt ones, and the captured
    references it redirects (classes are told by name: the backport rebuilds them)."""
    return any(klass.__name__ == "BaseDatabaseWrapper" for klass in type(obj).__mro__)


def count_wrappers():
    gc.collect()
    return sum(1 for obj in gc.get_objects() if is_database_wrapper(obj))


def master_sessions():
    return pgwatch.count_sessions(pgwatch.sessions(), database="master")


def query(index):
    """One thread's work: (id of the wrapper it used, its server session)."""
    from django.db import connection, connections

    close = index % 4 in (0, 2)
    if index % 4 < 2:
        wrapper = connections["pg_master"]
        session = support.query(wrapper, SESSION_SQL)[0][0]
        if close:
            wrapper.close()
    else:
        with connlocal_shim.route_connections(close_connections=close, default="pg_master"):
            wrapper = connections["default"]
            cursor = connection.cursor()  # the reference django.db keeps: routed too
            cursor.execute(SESSION_SQL)
            session = cursor.fetchone()[0]
    return id(wrapper), session


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


@requires_postgres
def test_a_thousand_short_lived_threads_leave_no_wrapper_nor_connection(stress_report):
    import django
    from django.db import connections

    backported = bool(support.original_features().missing)
    assert connlocal_shim.is_installed() or not backported, "the backport must be installed"
    main_wrapper = connections["pg_master"]
    wrappers_before = count_wrappers()
    sessions_before = master_sessions()

    started = time.time()
    churn = Churn(THREADS, ALIVE, query)
    with pgwatch.ConnectionWatcher() as watcher:
        churn.run()
    duration = time.time() - started
    wrappers_after = count_wrappers()
    # A server session ends a moment after its client connection is freed.
    sessions_after = pgwatch.count_sessions(
        pgwatch.wait_for_sessions(
            lambda found: pgwatch.count_sessions(found, database="master") <= sessions_before
        ),
        database="master",
    )

    sessions = [session for _, session in churn.returned.values()]
    report = stress_report.add
    report("Django", "%s, %s, %d patches in place" % (
        django.get_version(), "backport installed" if backported else "native connections",
        len(connlocal_shim.status()["patches"])))
    report("threads", "%d in %.1fs, at most %d alive, %d failed" % (
        THREADS, duration, ALIVE, len(churn.errors)))
    report("server sessions", "%d distinct, at most %d at once (bound %d + %d)" % (
        len(set(sessions)), watcher.max_by_database.get("master", 0), ALIVE, GC_EVERY))
    report("DatabaseWrapper objects (gc)", "%d before, %d after" % (
        wrappers_before, wrappers_after))
    report("server connections to master", "%d before, %d after" % (
        sessions_before, sessions_after))

    assert not churn.errors, "\n".join(churn.errors[:20])
    assert len(churn.returned) == THREADS
    assert id(main_wrapper) not in set(wrapper for wrapper, _ in churn.returned.values()), \
        "a thread used the main thread's wrapper"
    assert len(set(sessions)) == THREADS, "each thread must have its own server session"
    assert watcher.max_by_database.get("master", 0) <= ALIVE + GC_EVERY
    assert wrappers_after == wrappers_before, "wrappers left behind by ended threads"
    assert sessions_after == sessions_before, "server connections left behind by ended threads"
