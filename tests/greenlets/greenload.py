"""The load runs of tests/greenlets against the greenlet site (greenproject/): a server started
by the test (gunicorn_server.GunicornServer, or DocumentedServer for a command line taken from
docs/servers.rst), REQUESTS requests CLIENTS at a time (tests/stress/loadclient.py), then the
judgement:

    site = Site("postgres", workdir)           # its tables, empty; how to read them back
    problems = serve_and_judge(server, site, figures)

fails (a problem) if any request failed, if two requests ever held one connection at the same
moment (PostgreSQL sessions, or DB-API connection objects of a worker, with the server-side
times of their first and last query), if a request's queries changed connection, if the rows
written are not exactly those of the committed requests, each in its own transaction, or if
connections stay open while the server idles (PostgreSQL sessions of the site; the workers'
file descriptors on the sqlite file).
"""
import collections
import os
import random
import signal
import sqlite3
import sys
import threading
import time

import pytest

import gunicorn_server
import loadclient
import pgwatch

HERE = os.path.dirname(os.path.abspath(__file__))
APPLICATION_NAME = "connlocal-green-site"  # greenproject.settings.APPLICATION_NAME
REQUESTS = int(os.environ.get("CONNLOCAL_GREEN_REQUESTS", "240"))
CLIENTS = 20
LOAD_DEADLINE = 45  # seconds: a normal run takes a few; a hung server is given up on
# gunicorn --graceful-timeout of the worker runs: once stopped, a worker whose greenlets hang
# (on a connection they share) is killed after this.
GRACEFUL_TIMEOUT = 10
IDLE_TIMEOUT = 10  # seconds for the site's connections to go once the load has ended
KINDS = (("read", 35), ("write", 30), ("fail", 15), ("log", 20))  # paths: loadclient.METHODS

PG_SCHEMA = (
    "DROP TABLE IF EXISTS green_rows, green_audit",
    "CREATE TABLE green_rows (rid text NOT NULL, seq integer NOT NULL,"
    " txid bigint NOT NULL DEFAULT txid_current())",
    "CREATE TABLE green_audit (rid text NOT NULL, txid bigint NOT NULL DEFAULT txid_current())",
)
SQLITE_SCHEMA = (
    "CREATE TABLE green_rows (rid text NOT NULL, seq integer NOT NULL)",
    "CREATE TABLE green_audit (rid text NOT NULL)",
)


def make_plan(count, seed=12):
    chooser = random.Random(seed)
    weighted = [kind for kind, weight in KINDS for _ in range(weight)]
    plan = []
    for index in range(count):
        kind = chooser.choice(weighted)
        plan.append((index, kind, "%s-%04d" % (kind, index), 1 + index % 3))
    return plan


class Site(object):
    """The database a run serves, made empty, and how to read it back and count what is open."""

    def __init__(self, kind, directory):
        self.kind = kind
        self.sqlite_path = os.path.join(directory, "green.sqlite3")
        if kind == "postgres":
            pgwatch.execute_script("master", PG_SCHEMA)
        else:
            connection = sqlite3.connect(self.sqlite_path)
            for statement in SQLITE_SCHEMA:
                connection.execute(statement)
            connection.commit()
            connection.close()

    def env(self):
        env = dict(os.environ)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env["PYTHONPATH"] = HERE
        env["CONNLOCAL_GREEN_DATABASE"] = self.kind
        if self.kind == "postgres":
            from django.db import connections

            master = connections["pg_master"].settings_dict
            env.update(
                CONNLOCAL_GREEN_PG_ENGINE=master["ENGINE"],
                CONNLOCAL_GREEN_PG_HOST=master["HOST"],
                CONNLOCAL_GREEN_PG_PORT=str(master["PORT"]),
                CONNLOCAL_GREEN_PG_USER=master["USER"],
            )
        else:
            env["CONNLOCAL_GREEN_SQLITE"] = self.sqlite_path
        return env

    def rows(self):
        """{rid: [(seq, txid)]} of green_rows and {rid: count} of green_audit."""
        rows, audits = collections.defaultdict(list), collections.Counter()
        if self.kind == "postgres":
            found = pgwatch.fetch("master", "SELECT rid, seq, txid FROM green_rows")
            logged = pgwatch.fetch("master", "SELECT rid FROM green_audit")
        else:
            connection = sqlite3.connect(self.sqlite_path)
            try:
                found = connection.execute("SELECT rid, seq, NULL FROM green_rows").fetchall()
                logged = connection.execute("SELECT rid FROM green_audit").fetchall()
            finally:
                connection.close()
        for rid, seq, txid in found:
            rows[rid].append((seq, txid))
        for (rid,) in logged:
            audits[rid] += 1
        return rows, audits

    def open_connections(self, worker_pids):
        """PostgreSQL: the site's sessions; sqlite: the workers' descriptors on its file."""
        if self.kind == "postgres":
            return pgwatch.count_sessions(pgwatch.sessions(), APPLICATION_NAME)
        path, count = os.path.realpath(self.sqlite_path), 0
        for pid in worker_pids:
            directory = "/proc/%d/fd" % pid
            try:
                names = os.listdir(directory)
            except OSError:
                continue  # the worker is gone
            for name in names:
                try:
                    if os.path.realpath(os.readlink(os.path.join(directory, name))) == path:
                        count += 1
                except OSError:
                    pass
        return count

    def wait_until_closed(self, worker_pids, timeout=IDLE_TIMEOUT):
        deadline = time.time() + timeout
        pause = threading.Event()
        while True:
            count = self.open_connections(worker_pids)
            if count == 0 or time.time() >= deadline:
                return count
            pause.wait(0.1)


def holdings(results):
    """(connection, start, end, holder) for every request's own queries and its audit row's;
    and the requests whose own queries changed connection."""
    held, changed = [], []
    for result in results:
        body = result.body or {}
        for part, trace in (("own", body), ("audit", body.get("audit"))):
            if not trace or not trace.get("sessions"):
                continue
            sessions = trace["sessions"]
            if len(set(sessions)) > 1:
                changed.append((result.rid, part, sessions))
            for session in set(sessions):
                held.append((session, trace["first_at"], trace["last_at"], (result.rid, part)))
    return held, changed


def shared_while_held(held):
    """Pairs of holders that held one connection at the same moment."""
    by_session = collections.defaultdict(list)
    for session, start, end, holder in held:
        by_session[session].append((start, end, holder))
    shared = []
    for session, spans in by_session.items():
        spans.sort()
        for number, (start, end, holder) in enumerate(spans):
            for other_start, other_end, other in spans[number + 1:]:
                if other_start > end:
                    break
                if other != holder:
                    shared.append((session, holder, other))
    return shared


def most_at_once(results):
    """The most requests whose server-side windows overlapped at one moment."""
    events = []
    for result in results:
        body = result.body or {}
        if body.get("first_at") and body.get("last_at"):
            events.append((body["first_at"], 1))
            events.append((body["last_at"], -1))
    most = current = 0
    for _, step in sorted(events, key=lambda event: (event[0], -event[1])):
        current += step
        most = max(most, current)
    return most


def check_rows(site, results, problem):
    rows, audits = site.rows()
    sent = dict((result.rid, result) for result in results)
    for rid in sorted(set(rows) - set(sent)):
        problem("rows of %s, a request never sent" % rid)
    owner = {}
    for rid, found in sorted(rows.items()):
        for _, txid in found:
            if txid is not None and owner.setdefault(txid, rid) != rid:
                problem("transaction %s wrote rows of %s and of %s" % (txid, owner[txid], rid))
    for result in results:
        mine = rows.get(result.rid, [])
        body = result.body or {}
        seqs = sorted(seq for seq, _ in mine)
        if result.kind == "write" and result.ok:
            if seqs != list(range(result.rows)):
                problem("%s committed; rows %s, expected each of %s once" % (
                    result.rid, seqs, list(range(result.rows))))
            txids = sorted(set(txid for _, txid in mine if txid is not None))
            if site.kind == "postgres" and (len(body.get("txids") or []) != 1
                                            or txids != body.get("txids")):
                problem("%s wrote in transactions %s, found in %s" % (
                    result.rid, body.get("txids"), txids))
        elif result.kind == "fail" and mine:
            problem("%s rolled back, yet rows %s were committed" % (result.rid, seqs))
        elif result.kind in ("read", "log") and mine:
            problem("%s wrote rows %s" % (result.rid, seqs))
        if result.kind == "log" and result.ok and audits.get(result.rid) != 1:
            problem("%s logged %s audit rows, expected 1" % (result.rid, audits.get(result.rid)))
    return sum(len(found) for found in rows.values()), sum(audits.values())




class DocumentedServer(gunicorn_server.GunicornServer):
    """A server started from a command line as docs/servers.rst gives it (``{port}`` in place
    of its port); uWSGI stops on SIGINT (SIGTERM reloads it, unless --die-on-term)."""

    def __init__(self, argv, env, log_path, ready_timeout=30):
        gunicorn_server.GunicornServer.__init__(
            self, None, env, log_path, ready_timeout=ready_timeout, chdir=HERE)
        self.argv = argv

    def command(self, port):
        return [arg.replace("{port}", str(port)) for arg in self.argv]

    def stop(self, timeout=90):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        gunicorn_server.GunicornServer.stop(self, timeout)


class NoWatcher(object):
    """The ConnectionWatcher of a run with no server sessions to sample (sqlite)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def serve_and_judge(server, site, figures, label, requests=REQUESTS, during=None,
                    server_failure=None, session_bound=None):
    """Start ``server``, send the load, judge it (module docstring); the list of problems.
    A server that does not start fails the test at once, with its log.

    ``requests``: how many. ``during(server, load)``: run in the test's thread while the load
    goes on (the faults of a run: restarts). ``server_failure(result)``: the reason a failed
    request is the server's own and never reached the site (Apache's answer while mod_wsgi's
    daemons restart), or None; those are counted and reported, not problems. ``session_bound``
    (PostgreSQL): the most sessions of the site at once, sampled through the load."""
    problems = []
    problem = problems.append
    report = figures.add
    plan = make_plan(requests)
    watcher = pgwatch.ConnectionWatcher(APPLICATION_NAME) if site.kind == "postgres" else None
    try:
        with server:
            with loadclient.LoadRun(server.url, plan, CLIENTS, LOAD_DEADLINE, timeout=15) as load:
                with watcher or NoWatcher():
                    if during is not None:
                        during(server, load)
                    load.join()
            results = sorted(load.results, key=lambda result: result.index)
            workers = set(int(result.worker.split(":")[0]) for result in results
                          if result.worker)
            idle = site.wait_until_closed(workers)
    except gunicorn_server.GunicornError as error:
        report("requests", "none: the server did not start")
        pytest.fail("%s\n(%s on %s)" % (error, label, site.kind), pytrace=False)
    outside = collections.Counter()
    if server_failure is not None:
        for result in results:
            reason = None if result.ok else server_failure(result)
            if reason:
                outside[reason] += 1
    duration = load.ended - load.started
    failed = [result for result in results
              if not result.ok and not (server_failure and server_failure(result))]
    errors = collections.Counter(result.error_kind for result in failed)
    held, changed = holdings(results)
    shared = shared_while_held(held)
    at_once = most_at_once(results)
    written, logged = check_rows(site, results, problem)

    report("requests", "%d of %d in %.1fs (%.0f/s), %d clients" % (
        len(results), requests, duration, len(results) / max(duration, 0.001), CLIENTS))
    report("errors", "%d%s" % (len(failed), " (%s)" % ", ".join(
        "%s %d" % item for item in sorted(errors.items())) if errors else ""))
    report("connections seen", "%d distinct %s, at most %d requests at once" % (
        len(set(session for session, _, _, _ in held)),
        "server sessions" if site.kind == "postgres" else "DB-API connection ids", at_once))
    if outside:
        report("answered by the server alone", "%d (%s)" % (sum(outside.values()), ", ".join(
            "%s %d" % item for item in sorted(outside.items()))))
    if watcher is not None:
        report("site's sessions at most", "%d%s, %d samples" % (
            watcher.max_total, " (bound %d)" % session_bound if session_bound else "",
            watcher.samples))
    report("held by two at once", "%d pairs" % len(shared))
    report("changed mid-request", "%d requests" % len(changed))
    report("rows", "%d written, %d audit rows" % (written, logged))
    report("open when idle", "%d" % idle)

    if len(results) < requests:
        problem("only %d of %d requests were sent before the deadline" % (len(results), requests))
    if session_bound is not None and watcher is not None:
        if not watcher.samples:
            problem("the site's sessions were never sampled")
        elif watcher.max_total > session_bound:
            problem("the site held %d sessions at once, more than its bound %d" % (
                watcher.max_total, session_bound))
    for result in failed[:10]:
        problem("request failed: %s" % result.describe())
    if len(failed) > 10:
        problem("... %d failed requests in all: %s" % (len(failed), dict(errors)))
    for session, holder, other in shared[:10]:
        problem("%s and %s held connection %s at the same moment" % (holder, other, session))
    if len(shared) > 10:
        problem("... %d pairs in all held one connection at once" % len(shared))
    for rid, part, sessions in changed[:5]:
        problem("%s (%s queries) changed connection mid-request: %s" % (rid, part, sessions))
    if at_once < 2:
        problem("no two requests ever ran at once (at most %d): the run proves nothing" % at_once)
    if idle:
        problem("%d connections left open with the server idle (%s)" % (
            idle, "sessions of %s" % APPLICATION_NAME if site.kind == "postgres"
            else "the worker's descriptors on the sqlite file"))
    if problems:
        sys.stderr.write("the server's log:\n%s\n" % server.log_tail())
    return problems
