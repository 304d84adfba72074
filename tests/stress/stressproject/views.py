"""The stress project's views: what a legacy site does with its database, on every Django from
1.2 to 6.1. Each answers JSON saying which worker thread served it and which server session
(backend pid and start time) did the work, so that the test can check, from the database, that
nothing crossed from one thread or request to another.

    GET  /read/            reads through the "default" alias (the replica)
    POST /write/?rid=&rows= writes rows in a transaction (the middleware routes it to master),
                           with an audit row through separate_connection("master") half-way
    POST /fail/?rid=&rows=  the same, then raises IntendedFailure: the rows roll back, the audit
                           row stays
    GET  /log/?rid=         reads, and writes an audit row through separate_connection("master")

Queries go through ``connection``, the reference this module captures at import as legacy
modules do: it must act as the current thread's (routed) "default".
"""
import json
import os
import sys
import threading
import time
import traceback

from django.db import connection, transaction
from django.http import HttpResponse

from connlocal_shim import route_connections, separate_connection

try:  # Python 2
    from thread import get_ident
except ImportError:  # Python 3
    from threading import get_ident

# Per worker thread: its request counter and the current request's start (stamp_requests).
_thread = threading.local()
# Under gunicorn -k gevent (test_load_faults.py sets it): a pause after each row of a write, in
# the middle of its transaction, so that the other greenlets run then (time.sleep is gevent's
# there; psycopg2 itself does not yield).
YIELD_SECONDS = float(os.environ.get("CONNLOCAL_STRESS_YIELD_SECONDS") or 0)

SESSION = (
    "(SELECT pg_backend_pid()::text || '@' || backend_start::text FROM pg_stat_activity"
    " WHERE pid = pg_backend_pid())"
)


class IntendedFailure(Exception):
    """What /fail/ raises in the middle of its transaction."""


def stamp_requests(application):
    """Wrap the WSGI application: number each thread's requests and note when each started; an
    exception that escapes Django's handler (Django 1.2/1.3's got_request_exception receiver
    rolls back a dead connection and raises InterfaceError) is answered as handler500 would,
    marked "escaped", instead of by gunicorn's error page."""

    def stamped(environ, start_response):
        _thread.seq = getattr(_thread, "seq", 0) + 1
        _thread.started = time.time()
        try:
            return application(environ, start_response)
        except Exception as error:
            traceback.print_exc()  # to gunicorn's log, as gunicorn would
            response = _error_answer(error, escaped=True)
            start_response("500 INTERNAL SERVER ERROR", list(response.items()), sys.exc_info())
            return [response.content]

    return stamped


def _answer(status=200, **values):
    values.update(
        worker="%d:%d" % (os.getpid(), get_ident()),
        seq=getattr(_thread, "seq", None),
        started=getattr(_thread, "started", None),
    )
    return HttpResponse(json.dumps(values), status=status, content_type="application/json")


def _in_transaction(func):
    """Run func() in a transaction of "default", committed if it returns, rolled back if it
    raises: transaction.atomic on Django 1.6+, commit_on_success before (a managed block,
    marked dirty by the raw writes of func)."""
    atomic = getattr(transaction, "atomic", None)
    if atomic is not None:
        return atomic(using="default")(func)()
    return transaction.commit_on_success(using="default")(func)()


def _written_raw():
    """Before Django 1.6, raw SQL in a managed block must say it wrote, or commit_on_success
    commits nothing."""
    if not hasattr(transaction, "atomic"):
        transaction.set_dirty(using="default")


def _commit_unless_managed():
    """Commit the raw writes through "default" outside a managed block: before Django 1.6
    connections are in transactions; since then in autocommit mode, where there is nothing to
    do."""
    if hasattr(transaction, "commit_unless_managed"):
        transaction.commit_unless_managed(using="default")


def _audit(rid, kind):
    """An audit row that commits on a connection of its own, whatever happens to the request's
    transaction: README.rst's separate_connection pattern."""
    with route_connections(default=separate_connection("master")):
        cursor = connection.cursor()
        cursor.execute(
            "INSERT INTO audit_log (rid, kind) VALUES (%s, %s)"
            " RETURNING txid, current_database(), " + SESSION,
            [rid, kind],
        )
        txid, database, session = cursor.fetchone()
        _commit_unless_managed()
    return {"txid": txid, "database": database, "session": session}


def _write_rows(rid, rows, kind):
    cursor = connection.cursor()
    written = []
    audit = None
    for seq in range(rows):
        cursor.execute(
            "INSERT INTO writes (rid, seq) VALUES (%s, %s)"
            " RETURNING txid, current_database(), " + SESSION,
            [rid, seq],
        )
        written.append(cursor.fetchone())
        _written_raw()
        if YIELD_SECONDS:
            time.sleep(YIELD_SECONDS)
        if seq == 0:
            audit = _audit(rid, kind)  # half-way through the transaction
    txids, databases, sessions = (set(column) for column in zip(*written))
    return {
        "txids": sorted(txids),
        "databases": sorted(databases),
        "sessions": sorted(sessions),
        "audit": audit,
    }


def ping(request):
    return _answer(pong=True)


def read(request):
    cursor = connection.cursor()
    cursor.execute("SELECT current_database(), count(*), " + SESSION + " FROM seed")
    database, seeded, session = cursor.fetchone()
    return _answer(database=database, seeded=seeded, session=session)


def write(request):
    rid, rows = request.GET["rid"], int(request.GET["rows"])
    return _answer(rid=rid, **_in_transaction(lambda: _write_rows(rid, rows, "write")))


def fail(request):
    rid, rows = request.GET["rid"], int(request.GET["rows"])

    def write_then_raise():
        _write_rows(rid, rows, "fail")
        raise IntendedFailure("rolled back on purpose: %s" % rid)

    _in_transaction(write_then_raise)
    return _answer(status=599, rid=rid)  # never reached


def log(request):
    rid = request.GET["rid"]
    cursor = connection.cursor()
    cursor.execute("SELECT current_database(), " + SESSION)
    database, session = cursor.fetchone()
    audit = _audit(rid, "log")
    return _answer(rid=rid, database=database, session=session, audit=audit)


def _error_answer(error, escaped=False):
    return _answer(
        status=500,
        error=type(error).__name__ if error is not None else "unknown",
        message=str(error).strip().split("\n")[0][:300] if error is not None else "",
        escaped=escaped,
    )


def server_error(request, *args, **kwargs):
    """handler500: the kind of error, for the test to count (called while it is handled)."""
    return _error_answer(sys.exc_info()[1])
