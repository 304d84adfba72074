"""The throwaway PostgreSQL cluster seen from outside Django (tests/pg_cluster.py): plain
psycopg2 connections of the test's own, in autocommit mode, so that what they read is what the
server holds now. Their application_name, WATCH_NAME, keeps them out of every count.

    rows = fetch("master", "SELECT rid FROM writes")
    with ConnectionWatcher("connlocal-stress") as watcher:   # samples pg_stat_activity
        ...
    watcher.max_total, watcher.max_by_database
"""
import collections
import threading
import time

import pg_cluster
import support

WATCH_NAME = "connlocal-stress-watch"
# Client sessions by database and application, the watcher's own and other WATCH_NAME ones left
# out (backend_type: PostgreSQL 10+).
SESSIONS_SQL = (
    "SELECT datname, application_name, count(*) FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    " AND application_name <> %s GROUP BY datname, application_name"
)


def cluster():
    assert support.postgres_cluster is not None, support.postgres_unavailable
    return support.postgres_cluster


def connect(database="postgres"):
    import psycopg2

    connection = psycopg2.connect(
        host=pg_cluster.HOST, port=cluster().port, user=pg_cluster.SUPERUSER, dbname=database,
        application_name=WATCH_NAME, connect_timeout=10,
    )
    connection.autocommit = True
    return connection


def fetch(database, sql, params=()):
    """All rows of one query, on a connection opened and closed for it."""
    connection = connect(database)
    try:
        cursor = connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []
    finally:
        connection.close()


def execute_script(database, statements):
    connection = connect(database)
    try:
        cursor = connection.cursor()
        for statement in statements:
            cursor.execute(statement)
    finally:
        connection.close()


def sessions(connection=None):
    """{(database, application_name): number of client sessions} now."""
    own = connection is None
    connection = connection or connect()
    try:
        cursor = connection.cursor()
        cursor.execute(SESSIONS_SQL, [WATCH_NAME])
        return dict(((database, name), count) for database, name, count in cursor.fetchall())
    finally:
        if own:
            connection.close()


OTHERS_SQL = (
    "SELECT pid, backend_start FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    " AND application_name NOT IN (%s, %s)"
)


def other_sessions(application_name):
    """The client sessions now of anyone but ``application_name`` and the watchers, each as
    (pid, backend_start): a session that ends and one that starts in its place differ, where
    counts could cancel out."""
    return set(fetch("postgres", OTHERS_SQL, [WATCH_NAME, application_name]))


def count_sessions(found, application_name=None, database=None):
    return sum(
        count for (datname, name), count in found.items()
        if (application_name is None or name == application_name)
        and (database is None or datname == database)
    )


def wait_for_sessions(predicate, timeout=60, interval=0.05):
    """Poll sessions() until predicate(found) holds or ``timeout`` seconds pass; return the last
    sessions() seen. Backends leave pg_stat_activity a moment after their client closes."""
    deadline = time.time() + timeout
    pause = threading.Event()
    while True:
        found = sessions()
        if predicate(found) or time.time() >= deadline:
            return found
        pause.wait(interval)


def terminate_backends(application_name):
    """pg_terminate_backend() every client session of ``application_name``; returns how many."""
    (count,), = fetch(
        "postgres",
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = %s AND pid <> pg_backend_pid()",
        [application_name],
    )
    return count


def restart_server():
    """pg_ctl restart --mode fast, on the same port and log file: every session is ended and the
    server is back, accepting connections, when this returns (the cluster object is the one
    tests/conftest.py started; its _run runs pg_ctl as the server's OS user)."""
    server = cluster()
    server._run(
        "pg_ctl", "restart", "--pgdata", server.data_directory, "--log", server.log_file,
        "--mode", "fast", "--wait", "--timeout", "120", "-o", "-p %d" % server.port,
    )


class Sampler(object):
    """Calls ``sample()`` every ``interval`` seconds in a daemon thread, from the start of the
    ``with`` block until its end or until ``limit`` seconds have passed, then ``finish()``.
    Subclasses keep what they sample (the largest counts) and count their samples."""

    name = "sampler"

    def __init__(self, interval, limit):
        self.interval, self.limit = interval, limit
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name)
        self._thread.daemon = True

    def sample(self):
        raise NotImplementedError

    def finish(self):
        pass

    def _run(self):
        deadline = time.time() + self.limit
        while not self._stop.is_set() and time.time() < deadline:
            self.sample()
            self._stop.wait(self.interval)
        self.finish()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(60)
        return False


class ConnectionWatcher(Sampler):
    """Samples the client sessions of ``application_name`` (or of every application) every
    ``interval`` seconds in a thread, until stopped or ``limit`` seconds have passed; keeps the
    largest counts. A lost connection (the server restarting) is counted and reopened."""

    name = "connection-watcher"

    def __init__(self, application_name=None, interval=0.02, limit=900):
        Sampler.__init__(self, interval, limit)
        self.application_name = application_name
        self.reconnects = 0
        self.max_total = 0
        self.max_by_database = {}
        self._connection = None

    def sample(self):
        import psycopg2

        try:
            if self._connection is None:
                self._connection = connect()
            self._record(sessions(self._connection))
        except psycopg2.Error:
            self.reconnects += 1
            if self._connection is not None:
                self._connection.close()
            self._connection = None

    def finish(self):
        if self._connection is not None:
            self._connection.close()

    def _record(self, found):
        self.samples += 1
        mine = collections.Counter()
        for (database, name), count in found.items():
            if self.application_name is None or name == self.application_name:
                mine[database] += count
        self.max_total = max(self.max_total, sum(mine.values()))
        for database, count in mine.items():
            self.max_by_database[database] = max(self.max_by_database.get(database, 0), count)
