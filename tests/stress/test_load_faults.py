"""A legacy site under load, on the servers such sites deploy on: gunicorn's gthread worker, 16
threads in one process, and its gevent worker, 16 greenlets at once (GEVENT_REQUESTS requests,
the views yielding to the other greenlets in the middle of their transactions), serving the stress project (stressproject/) from this process's
throwaway PostgreSQL cluster, while a pool of client threads sends a few thousand requests:
reads, writes in transactions (routed to master by ConnectionPinningMiddleware), requests that
raise mid-transaction, and requests that log through separate_connection. Mid-run, the test
terminates the site's server connections three times (pg_terminate_backend) and restarts the
PostgreSQL server once.

Afterwards the database itself must show: every committed write exactly once, nothing of a
rolled-back request, every audit row (also of the requests that rolled back), no row written in
another request's transaction, no server session used by two threads; the site's server
connections bounded by its threads during the run and gone once its threads end; and every
failure a request that met a fault, each thread serving again after it.
"""
import collections
import os
import shutil
import sys
import tempfile
import time

import pytest

import gunicorn_server
import loadclient
import pgwatch
import support
from support import requires_postgres

HERE = os.path.dirname(os.path.abspath(__file__))

APPLICATION_NAME = "connlocal-stress"  # stressproject.settings.APPLICATION_NAME
WORKERS = 1
THREADS = int(os.environ.get("CONNLOCAL_STRESS_THREADS", "16"))
REQUESTS = int(os.environ.get("CONNLOCAL_STRESS_REQUESTS", "4000"))
CLIENTS = THREADS + 8  # more clients than threads: every thread stays busy
# Under -k gevent: fewer requests (CI's time), and the views yield in the middle of each write
# transaction (stressproject/views.py), as psycopg2 does not yield to other greenlets itself.
WORKER_CLASSES = ("gthread", "gevent")
GEVENT_REQUESTS = int(os.environ.get("CONNLOCAL_STRESS_GEVENT_REQUESTS", "1000"))
GEVENT_YIELD_SECONDS = "0.002"
REQUIRE_GREENLETS = os.environ.get("CONNLOCAL_SHIM_REQUIRE_GREENLETS") == "1"
LOAD_DEADLINE = 420  # seconds: the load stops by itself then, and the test fails
# The most server connections one thread holds at once: a writing request's own connection to
# master and the separate one its audit row goes through (reads use "default", the replica).
CONNECTIONS_PER_THREAD = 2
# When each fault strikes, as a fraction of the requests answered.
FAULTS = ((0.20, "terminate"), (0.35, "terminate"), (0.50, "terminate"), (0.65, "restart"))

SCHEMA = (
    "DROP TABLE IF EXISTS writes, audit_log, seed",
    # txid and pid are filled in by the server: the transaction and session that wrote the row.
    "CREATE TABLE writes (id bigserial PRIMARY KEY, rid text NOT NULL, seq integer NOT NULL,"
    " txid bigint NOT NULL DEFAULT txid_current(), pid integer NOT NULL DEFAULT pg_backend_pid())",
    "CREATE TABLE audit_log (id bigserial PRIMARY KEY, rid text NOT NULL, kind text NOT NULL,"
    " txid bigint NOT NULL DEFAULT txid_current(), pid integer NOT NULL DEFAULT pg_backend_pid())",
    "CREATE TABLE seed (x integer)",
    "INSERT INTO seed SELECT generate_series(1, 10)",
)


@pytest.fixture
def stress_databases():
    """The stress project's tables, empty, in master and in the replica (where a misrouted write
    would land, to be found)."""
    for database in ("master", "replica"):
        pgwatch.execute_script(database, SCHEMA)


@pytest.fixture
def server_log():
    directory = tempfile.mkdtemp(prefix="connlocal-stress-")
    yield os.path.join(directory, "gunicorn.log")
    shutil.rmtree(directory, True)


def server_env(worker_class="gthread", alias="pg_master", **extra):
    """gunicorn's environment: this one, with the address of ``alias`` (its cluster's, or
    PgBouncer's) for stressproject.settings (and, under gevent, the views' yield), and
    ``extra`` variables."""
    from django.db import connections

    master = connections[alias].settings_dict
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        CONNLOCAL_STRESS_PG_ENGINE=master["ENGINE"],
        CONNLOCAL_STRESS_PG_HOST=master["HOST"],
        CONNLOCAL_STRESS_PG_PORT=str(master["PORT"]),
        CONNLOCAL_STRESS_PG_USER=master["USER"],
        PYTHONPATH=HERE,
    )
    env.pop("CONNLOCAL_STRESS_YIELD_SECONDS", None)
    if worker_class != "gthread":
        env["CONNLOCAL_STRESS_YIELD_SECONDS"] = GEVENT_YIELD_SECONDS
    env.update(extra)
    return env


def require_worker_class(worker_class):
    """Skip (or, where CI requires the servers' libraries, fail) a worker class whose libraries
    are missing: gunicorn, and gevent for -k gevent or concurrent.futures for gthread."""
    needed = [("gunicorn", "gunicorn")]
    needed.append(("gevent", "gevent") if worker_class == "gevent" else
                  ("concurrent.futures", "futures"))
    for module, package in needed:
        try:
            __import__(module)
        except ImportError as error:
            reason = "no %s (%s), for gunicorn -k %s: pip install %s" % (
                module, error, worker_class, package)
            if REQUIRE_GREENLETS:
                pytest.fail("CONNLOCAL_SHIM_REQUIRE_GREENLETS=1 and " + reason, pytrace=False)
            pytest.skip(reason)


def strike(fault, load):
    """Apply one fault now; return what happened, with the window of time it covered."""
    record = {"fault": fault, "at": load.completed}
    if fault == "terminate":
        # Until it ends at least one session (the site's connections live only during
        # requests), for a minute at most.
        give_up = time.time() + 60
        while True:
            pgwatch.wait_for_sessions(
                lambda found: pgwatch.count_sessions(found, APPLICATION_NAME) > 0,
                timeout=max(give_up - time.time(), 0),
            )
            record["started"] = time.time()
            record["terminated"] = pgwatch.terminate_backends(APPLICATION_NAME)
            record["ended"] = time.time()
            if record["terminated"] or time.time() >= give_up:
                break
    else:
        record["started"] = time.time()
        pgwatch.restart_server()
        record["ended"] = time.time()
    return record


def fault_met(result, windows):
    """The number (1, 2...) of the first fault a request overlapped, begun (by the server) before
    the fault was over and answered after it began; None if it met none."""
    for number, window in enumerate(windows, 1):
        if result.server_started <= window["ended"] and result.ended >= window["started"]:
            return number
    return None


def is_intended(result):
    return result.kind == "fail" and result.error_kind == "IntendedFailure"


def own_sessions(result):
    """The server sessions (pid@backend_start) a request reported for its own queries."""
    body = result.body or {}
    return list(body.get("sessions") or []) + ([body["session"]] if body.get("session") else [])


def sessions_of(result):
    """... and the one of its audit row."""
    audit = (result.body or {}).get("audit")
    return own_sessions(result) + ([audit["session"]] if audit else [])


def check_rows(results, problem, master="master", replica="replica"):
    """What the database holds against what each request answered (the databases by the names
    the cluster knows them)."""
    writes = collections.defaultdict(list)  # rid -> [(seq, txid)]
    for rid, seq, txid in pgwatch.fetch(master, "SELECT rid, seq, txid FROM writes"):
        writes[rid].append((seq, txid))
    audits = collections.defaultdict(list)  # rid -> [(kind, txid)]
    for rid, kind, txid in pgwatch.fetch(master, "SELECT rid, kind, txid FROM audit_log"):
        audits[rid].append((kind, txid))
    for table in ("writes", "audit_log"):
        (count,), = pgwatch.fetch(replica, "SELECT count(*) FROM %s" % table)
        if count:
            problem("%d rows in the replica's %s: writes must go to master" % (count, table))

    sent = set(result.rid for result in results)
    for rid in sorted((set(writes) | set(audits)) - sent):
        problem("rows for %s, a request never sent" % rid)
    owner = {}
    for rid, rows in sorted(writes.items()):
        for _, txid in rows:
            if owner.setdefault(txid, rid) != rid:
                problem("transaction %s wrote rows of %s and of %s" % (txid, owner[txid], rid))
    for rid, rows in sorted(audits.items()):
        for _, txid in rows:
            if txid in owner:
                problem("the audit row of %s was written in the transaction of %s's rows"
                        % (rid, owner[txid]))

    for result in results:
        rows, logged = writes.get(result.rid, []), audits.get(result.rid, [])
        seqs = sorted(seq for seq, _ in rows)
        expected = list(range(result.rows))
        body = result.body or {}
        where = result.describe()
        if result.kind in ("read", "log") and rows:
            problem("%s: %d rows in writes" % (where, len(rows)))
        if result.kind == "fail":
            if rows:
                problem("%s: rolled back, yet rows %s are in writes" % (where, seqs))
            if result.ok:
                problem("%s: answered 200" % where)
        if result.ok and result.kind in ("read", "log") and body.get("database") != replica:
            problem("%s: read from %s, not the replica" % (where, body.get("database")))
        if result.ok and result.kind == "write":
            if body.get("databases") != [master] or len(body.get("txids") or []) != 1:
                problem("%s: wrote to %s in transactions %s" % (
                    where, body.get("databases"), body.get("txids")))
            if seqs != expected:
                problem("%s: committed; rows %s in writes, expected each of %s once" % (
                    where, seqs, expected))
            if set(txid for _, txid in rows) != set(body.get("txids") or []):
                problem("%s: rows written in transactions %s, it reported %s" % (
                    where, sorted(set(txid for _, txid in rows)), body.get("txids")))
        elif result.kind == "write" and seqs not in ([], expected):
            problem("%s: failed; rows %s in writes, expected all of %s or none" % (
                where, seqs, expected))
        # Every audit row: one for each request that says it logged, at most one otherwise.
        logged_kinds = [kind for kind, _ in logged]
        if (result.ok and result.kind in ("write", "log")) or is_intended(result):
            if logged_kinds != [result.kind]:
                problem("%s: audit rows %s, expected one %r" % (where, logged_kinds, result.kind))
            audit = body.get("audit") or {}
            if audit and (audit.get("database") != master
                          or audit.get("session") in own_sessions(result)):
                problem("%s: audit row through %s, not a separate connection to master" % (
                    where, audit))
            if audit and logged and logged[0][1] != audit.get("txid"):
                problem("%s: audit row in transaction %s, it reported %s" % (
                    where, logged[0][1], audit.get("txid")))
        elif len(logged) > 1 or (logged and logged_kinds != [result.kind]):
            problem("%s: audit rows %s" % (where, logged_kinds))
    return sum(len(rows) for rows in writes.values()), sum(len(rows) for rows in audits.values())


def check_threads(results, windows, problem, greenlet_per_request=False):
    """Failures only where a fault struck; each thread serves again after it; no server session
    used by two threads. Under gevent a greenlet serves one request and ends ("worker" is its
    identity): there the requests begun after the last fault must have been served instead."""
    failures = [result for result in results if not result.ok and not is_intended(result)]
    for result in failures:
        if fault_met(result, windows) is None:
            problem("%s: failed, and no fault overlapped it" % result.describe())
    users = collections.defaultdict(set)
    for result in results:
        for session in sessions_of(result):
            users[session].add(result.worker)
    for session, workers in sorted(users.items()):
        if len(workers) > 1:
            problem("server session %s used by threads %s" % (session, sorted(workers)))
    recovered_after = max(window["ended"] for window in windows) if windows else 0
    served_after = set(
        result.worker for result in results
        if result.ok and result.server_started > recovered_after
    )
    hit = set(result.worker for result in failures if result.worker)
    if greenlet_per_request:
        if windows and not served_after:
            problem("no request was served after the last fault")
        return failures, hit, served_after, users
    for worker in sorted(hit - served_after):
        problem("thread %s failed in a fault and served no request after the last one" % worker)
    return failures, hit, served_after, users


@requires_postgres
@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_gunicorn_site_under_load_with_faults(worker_class, stress_databases, server_log,
                                              stress_report):
    import django

    require_worker_class(worker_class)
    greenlets = worker_class != "gthread"
    planned = GEVENT_REQUESTS if greenlets else REQUESTS
    problems = []
    problem = problems.append
    report = stress_report.add
    report("Django, gunicorn, Python", "%s, %s (%s), %s" % (
        django.get_version(), gunicorn_server.gunicorn_version(), worker_class,
        sys.version.split()[0]))
    report("server", "%d worker process x %d %s, %d client threads" % (
        WORKERS, THREADS, "greenlets at once" if greenlets else "threads", CLIENTS))

    before = pgwatch.sessions()
    # Other clients' sessions (PgBouncer's, this process's, other tests'): the restart fault
    # ends them too, so the check is that the site opened none of them, not that all survive.
    others_before = pgwatch.other_sessions(APPLICATION_NAME)
    plan = loadclient.make_plan(planned)
    windows = []
    server = gunicorn_server.GunicornServer(
        "stressproject.wsgi:application", server_env(worker_class), server_log, workers=WORKERS,
        threads=THREADS, worker_class=worker_class, connections=THREADS,
    )
    try:
        with pgwatch.ConnectionWatcher(APPLICATION_NAME) as watcher:
            with server:
                with loadclient.LoadRun(server.url, plan, CLIENTS, LOAD_DEADLINE) as load:
                    for fraction, fault in FAULTS:
                        if not load.wait_for_completed(int(planned * fraction)) \
                                or not load.running:
                            break  # a fault after the load proves nothing: reported below
                        windows.append(strike(fault, load))
                # Django closes a request's connections when it finishes: none stays open
                # while the threads wait for work.
                idle = pgwatch.wait_for_sessions(
                    lambda found: pgwatch.count_sessions(found, APPLICATION_NAME) == 0)
        # ... nor once gunicorn and its threads are gone.
        after = pgwatch.wait_for_sessions(
            lambda found: pgwatch.count_sessions(found, APPLICATION_NAME) == 0)
        others_new = pgwatch.other_sessions(APPLICATION_NAME) - others_before
    except BaseException:
        sys.stderr.write("gunicorn's log %s:\n%s\n" % (server_log, server.log_tail()))
        raise

    results = sorted(load.results, key=lambda result: result.index)
    duration = load.ended - load.started
    report("requests", "%d of %d sent in %.1fs (%.0f/s)" % (
        len(results), planned, duration, len(results) / duration))
    if len(results) < planned:
        problem("only %d of %d requests were sent before the load's deadline (%ss)" % (
            len(results), planned, LOAD_DEADLINE))
    kinds = collections.Counter(result.kind for result in results)
    ok = collections.Counter(result.kind for result in results if result.ok)
    report("by kind (answered 200)", ", ".join(
        "%s %d (%d)" % (kind, kinds[kind], ok[kind]) for kind, _, _, _ in loadclient.KINDS))
    report("rolled back on purpose", sum(1 for result in results if is_intended(result)))
    for number, window in enumerate(windows, 1):
        report("fault %d, at request %d" % (number, window["at"]), "%s%s, %.2fs" % (
            window["fault"],
            " (%d sessions ended)" % window["terminated"] if "terminated" in window else "",
            window["ended"] - window["started"]))
        if window.get("terminated") == 0:
            problem("no session of the site to terminate at request %d" % window["at"])
    if len(windows) < len(FAULTS):
        problem("only %d of %d faults struck" % (len(windows), len(FAULTS)))

    written, logged = check_rows(results, problem)
    failures, hit, served_after, sessions = check_threads(
        results, windows, problem, greenlet_per_request=greenlets)
    by_fault = collections.defaultdict(collections.Counter)
    examples = {}
    for result in failures:
        by_fault[fault_met(result, windows)][result.error_kind] += 1
        examples.setdefault(result.error_kind, (result.body or {}).get("message", ""))
    report("errors (not intended)", "%d" % len(failures))
    for number in sorted(by_fault, key=lambda number: number or 0):
        label = "  at fault %d (%s)" % (number, windows[number - 1]["fault"]) if number \
            else "  outside any fault"
        report(label, ", ".join("%s %d" % item for item in sorted(by_fault[number].items())))
    for kind, message in sorted(examples.items()):
        report("  e.g. " + kind, message[:90])
    workers = set(result.worker for result in results if result.worker)
    report("greenlet identities" if greenlets else "threads",
           "%d served, %d met a fault, %d served after the last fault" % (
               len(workers), len(hit), len(served_after)))
    report("rows in master", "writes %d, audit_log %d" % (written, logged))
    report("server sessions", "%d, each used by one thread" % len(sessions))

    threads = WORKERS * THREADS
    report("site's connections, max", "%d (master %d, replica %d; bound %d = %d threads x %d)" % (
        watcher.max_total, watcher.max_by_database.get("master", 0),
        watcher.max_by_database.get("replica", 0), threads * CONNECTIONS_PER_THREAD, threads,
        CONNECTIONS_PER_THREAD))
    report("  sampled", "%d times, %d reconnects of the watcher" % (
        watcher.samples, watcher.reconnects))
    idle_count = pgwatch.count_sessions(idle, APPLICATION_NAME)
    after_site = pgwatch.count_sessions(after, APPLICATION_NAME)
    after_others = pgwatch.count_sessions(after) - after_site
    report("site's connections, final", "%d with gunicorn idle, %d once it stopped" % (
        idle_count, after_site))
    report("other client sessions", "%d before, %d after, %d of them new" % (
        len(others_before), after_others, len(others_new)))
    if watcher.max_total < 1:
        problem("the watcher never saw a connection of the site (%d samples)" % watcher.samples)
    if watcher.max_total > threads * CONNECTIONS_PER_THREAD:
        problem("%d connections at once for %d threads" % (watcher.max_total, threads))
    if watcher.max_by_database.get("replica", 0) > threads:
        problem("%d replica connections at once for %d threads" % (
            watcher.max_by_database["replica"], threads))
    if idle_count:
        problem("%d connections of the site left open with its threads idle" % idle_count)
    if after_site or others_new:
        problem("sessions once gunicorn stopped: %s (before: %s), %d new sessions of other "
                "clients" % (after, before, len(others_new)))

    if problems:
        sys.stderr.write("gunicorn's log %s:\n%s\n" % (server_log, server.log_tail()))
    assert not problems, "%d problems:\n%s" % (len(problems), "\n".join(problems[:40]))
