"""The greenlet site's views. Each query says which connection ran it: the PostgreSQL session
(``pid@backend_start``) or, on sqlite, the DB-API connection object (``worker pid:id``), and
each answer gives the server-side times of its first and last query, so that the test can find
two requests that held one connection at the same moment. Between queries the views yield to
the other greenlets (``time.sleep``, which gevent and eventlet patch): in the middle of a
PostgreSQL transaction; on sqlite outside its short write transactions (a greenlet waiting for
the file's lock would block the whole worker, the holder with it).

    GET  /read/?rid=          two reads, a yield between
    POST /write/?rid=&rows=   rows written in one transaction (commit_on_success)
    POST /fail/?rid=&rows=    the same, rolled back by an exception inside it (answered 200)
    GET  /log/?rid=           a read, an audit row through separate_connection("default")

Queries go through ``connection``, captured at import as 1.3-era modules did.
"""
import json
import os
import sys
import time

from django.db import connection, transaction
from django.http import HttpResponse

from connlocal_shim import route_connections, separate_connection

try:  # Python 2: read thread.get_ident at call time, as gevent/eventlet patch it
    import thread as thread_module
except ImportError:  # Python 3
    import _thread as thread_module

from greenproject.settings import DATABASE_KIND

POSTGRES = DATABASE_KIND == "postgres"
YIELD_SECONDS = 0.005
SESSION = (
    "(SELECT pg_backend_pid()::text || '@' || backend_start::text FROM pg_stat_activity"
    " WHERE pid = pg_backend_pid())"
)


class IntendedFailure(Exception):
    """What /fail/ raises inside its transaction."""


def pause():
    time.sleep(YIELD_SECONDS)  # the other greenlets run meanwhile (patched time.sleep)


class Trace(object):
    """The connection behind each query of one request (or of its audit row), and when the
    first and the last of them returned."""

    def __init__(self):
        self.sessions = []
        self.first_at = self.last_at = None

    def query(self, sql, params=()):
        """Run ``sql``; on PostgreSQL its last column must be SESSION."""
        cursor = connection.cursor()
        if POSTGRES:
            cursor.execute(sql, params)
            row = cursor.fetchone()
            session = row[-1]
        else:
            cursor.execute(sql, params)
            row = cursor.fetchone() if cursor.description else None
            session = "%d:0x%x" % (os.getpid(), id(connection.connection))
        self.sessions.append(session)
        self.first_at = self.first_at or time.time()
        self.last_at = time.time()
        return row

    def read(self):
        if POSTGRES:
            return self.query("SELECT " + SESSION)
        return self.query("SELECT count(*) FROM green_rows")

    def as_dict(self):
        return {"sessions": self.sessions, "first_at": self.first_at, "last_at": self.last_at}


def insert_row(trace, rid, seq):
    if POSTGRES:
        row = trace.query("INSERT INTO green_rows (rid, seq) VALUES (%s, %s)"
                          " RETURNING txid, " + SESSION, [rid, seq])
        return row[0]
    trace.query("INSERT INTO green_rows (rid, seq) VALUES (%s, %s)", [rid, seq])
    return None


def write_rows(trace, rid, rows, then_raise=False):
    """``rows`` rows in one transaction of "default"; their txids (PostgreSQL)."""
    txids = []

    @transaction.commit_on_success(using="default")
    def in_transaction():
        for seq in range(rows):
            txids.append(insert_row(trace, rid, seq))
            transaction.set_dirty(using="default")  # raw SQL: commit_on_success must commit
            if POSTGRES:
                pause()  # mid-transaction
        if then_raise:
            raise IntendedFailure("rolled back on purpose: %s" % rid)

    if not POSTGRES:
        trace.read()
        pause()
    try:
        in_transaction()
    finally:
        if not POSTGRES:
            pause()
            trace.read()
    return sorted(set(txid for txid in txids if txid is not None))


def answer(status=200, **values):
    values["worker"] = "%d:%d" % (os.getpid(), thread_module.get_ident())
    return HttpResponse(json.dumps(values), status=status, content_type="application/json")


def ping(request):
    return answer(pong=True)


def read(request):
    trace = Trace()
    trace.read()
    pause()
    trace.read()
    return answer(rid=request.GET.get("rid"), **trace.as_dict())


def write(request):
    rid, rows = request.GET["rid"], int(request.GET["rows"])
    trace = Trace()
    txids = write_rows(trace, rid, rows)
    return answer(rid=rid, txids=txids, **trace.as_dict())


def fail(request):
    rid, rows = request.GET["rid"], int(request.GET["rows"])
    trace = Trace()
    try:
        write_rows(trace, rid, rows, then_raise=True)
    except IntendedFailure:
        return answer(rid=rid, rolled_back=True, **trace.as_dict())
    return answer(status=599, rid=rid, error="no IntendedFailure", **trace.as_dict())


def log(request):
    rid = request.GET["rid"]
    trace, audit = Trace(), Trace()
    trace.read()
    with route_connections(default=separate_connection("default")):
        if POSTGRES:
            audit.query("INSERT INTO green_audit (rid) VALUES (%s) RETURNING txid, " + SESSION,
                        [rid])
            pause()  # inside the audit row's own transaction
        else:
            audit.query("INSERT INTO green_audit (rid) VALUES (%s)", [rid])
        transaction.commit_unless_managed(using="default")
        if not POSTGRES:
            pause()
            audit.read()
    trace.read()
    return answer(rid=rid, audit=audit.as_dict(), **trace.as_dict())


def server_error(request, *args, **kwargs):
    """handler500: the kind of error, for the test to count."""
    error = sys.exc_info()[1]
    return answer(
        status=500,
        error=type(error).__name__ if error is not None else "unknown",
        message=str(error).strip().split("\n")[0][:300] if error is not None else "",
    )
