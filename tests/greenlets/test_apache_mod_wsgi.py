"""Apache and mod_wsgi in daemon mode (docs/servers.rst's lines: 2 processes of 15 threads)
serving the greenlet site with the backport, on an sqlite file and on PostgreSQL, judged as the
gunicorn runs are (greenload.py: 0 failed requests, 0 pairs of requests on one connection at
once, rows exactly those committed, nothing open once idle), with the site's PostgreSQL
sessions sampled through the load and bounded by 2 per thread (a request's own connection and
its audit row's, separate_connection):

- maximum-requests: each daemon exits after MAXIMUM_REQUESTS requests and Apache starts
  another, several times in one run;
- the daemons restarted under load as docs/servers.rst says to: SIGUSR1 to each (mod_wsgi's
  graceful restart), then the WSGI script touched (each daemon reloads);
- apachectl graceful under load: every answer of the site is a success; Apache answers some
  requests itself, without or with the backport (checked by hand with a wsgi.py that does not
  install it): 503 while the daemons' sockets are gone ("Unable to connect to WSGI daemon
  process" in its error log), 500 when the restart stopped a daemon in the middle of the
  request ("Truncated or oversized response headers"). Those are counted apart, each must be
  in the log, and the log must show no daemon crashing.
"""
import collections
import os
import shutil
import tempfile

import pytest

import apache
import greenload
from support import requires_postgres

PROCESSES, THREADS = 2, 15  # docs/servers.rst's WSGIDaemonProcess
SESSION_BOUND = PROCESSES * THREADS * 2
REQUESTS = 600
# Each restart waits until the new daemons run (a second or two): a longer load, so that
# requests reach them.
RESTART_REQUESTS = 1500
MAXIMUM_REQUESTS = 50
NO_RECYCLING = 100000
TOUCH_WAIT = 5  # seconds
DATABASES = ["sqlite", pytest.param("postgres", marks=requires_postgres)]


def missing(reason):
    """Skip for ``reason``, or fail where CI requires Apache (CONNLOCAL_SHIM_REQUIRE_APACHE=1)."""
    if os.environ.get("CONNLOCAL_SHIM_REQUIRE_APACHE") == "1":
        pytest.fail("CONNLOCAL_SHIM_REQUIRE_APACHE=1 and " + reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def runtime():
    try:
        apache.find()
        apache.daemon_user()
    except apache.ApacheMissing as error:
        missing(str(error))
    directory = tempfile.mkdtemp(prefix="connlocal-apache-")
    try:
        yield apache.Runtime(directory)
    finally:
        shutil.rmtree(directory, True)


def serve(runtime, database, workdir, figures, maximum_requests, requests=REQUESTS,
          **judging):
    import django

    site = greenload.Site(database, workdir)
    apache.give_to_daemon_user(workdir)  # the sqlite file and its journal, the logs
    server = apache.ApacheServer(runtime, site.env(), workdir, maximum_requests)
    figures.add("Django, Python", "%s, %s (mod_wsgi, daemon mode, %d x %d threads)" % (
        django.get_version(), os.path.basename(runtime.python_home), PROCESSES, THREADS))
    problems = greenload.serve_and_judge(
        server, site, figures, "Apache mod_wsgi", requests=requests,
        session_bound=SESSION_BOUND, **judging)
    return server, problems


def judge(problems, server, database):
    assert not problems, "on %s: %d problems:\n%s\nApache's error log:\n%s" % (
        database, len(problems), "\n".join(problems[:40]), server.log_tail(60))


def daemons_seen(server):
    return set(int(result.worker.split(":")[0]) for result in server.results if result.worker)


class Faults(object):
    """``during`` for serve_and_judge: ``fault(server)`` once each third of the load is
    answered; keeps the results for the checks after."""

    def __init__(self, *faults):
        self.faults = faults
        self.done = []

    def __call__(self, server, load):
        server.results = load.results  # the clients' list, complete once they have ended
        for number, fault in enumerate(self.faults):
            if not load.wait_for_completed(
                    len(load.plan) * (number + 1) // (len(self.faults) + 1)):
                return  # the clients stopped (deadline): the judgement says so
            self.done.append(fault(server))


def keep_results(server, load):
    server.results = load.results


@pytest.mark.parametrize("database", DATABASES)
def test_apache_daemons_recycle_under_load(runtime, database, workdir, figures):
    server, problems = serve(runtime, database, workdir, figures, MAXIMUM_REQUESTS,
                             during=keep_results)
    seen = daemons_seen(server)
    figures.add("daemon processes", "%d served (maximum-requests=%d)" % (
        len(seen), MAXIMUM_REQUESTS))
    # REQUESTS / MAXIMUM_REQUESTS daemons at least, less those a recycle left unfinished.
    if len(seen) <= PROCESSES + 2:
        problems.append("only %d daemon processes served %d requests with maximum-requests=%d: "
                        "they did not recycle" % (len(seen), REQUESTS, MAXIMUM_REQUESTS))
    judge(problems, server, database)


def touch_and_wait(server):
    """Touch the script; the daemons that replaced the old ones within TOUCH_WAIT seconds. A
    daemon reloads at its next request only, and under a load one daemon can serve the other
    may get none for a while (the daemons share one listening socket, and the kernel need not
    wake them in turn): at least one must have reloaded."""
    old = server.daemon_pids()
    server.touch_script()
    return old, server.wait_for_new_daemons(old, TOUCH_WAIT)


@pytest.mark.parametrize("database", DATABASES)
def test_apache_daemons_restarted_under_load(runtime, database, workdir, figures):
    faults = Faults(lambda server: server.restart_daemons(), touch_and_wait)
    server, problems = serve(runtime, database, workdir, figures, NO_RECYCLING, during=faults,
                             requests=RESTART_REQUESTS)
    seen = daemons_seen(server)
    figures.add("daemon processes", "%d served; replaced: by SIGUSR1 %s, by the touched "
                "script %s" % (len(seen), "none" if len(faults.done) < 1 else faults.done[0],
                               "none" if len(faults.done) < 2 else faults.done[1]))
    for (old, new), how, least in zip(faults.done, ("SIGUSR1", "the touched script"),
                                      (PROCESSES, 1)):
        if len(old) != PROCESSES or len(new) < least:
            problems.append("%s replaced daemons %s by %s, expected %d by at least %d" % (
                how, old, new, PROCESSES, least))
        elif not set(new) & seen:
            problems.append("no request reached the daemons %s started after %s" % (new, how))
    if len(faults.done) != 2:
        problems.append("%d of the 2 restarts were made" % len(faults.done))
    judge(problems, server, database)


def answered_by_apache(result):
    """Why Apache answered a request itself, without an answer of the site's (its answers,
    errors included, are JSON naming the worker), or None."""
    if result.body is not None:
        return None
    return {503: "HTTP 503: no daemon socket to connect to",
            500: "HTTP 500: its daemon stopped by the restart mid-request"}.get(result.status)


@pytest.mark.parametrize("database", DATABASES)
def test_apache_graceful_restart_under_load(runtime, database, workdir, figures):
    faults = Faults(lambda server: server.graceful(), lambda server: server.graceful())
    server, problems = serve(runtime, database, workdir, figures, NO_RECYCLING, during=faults,
                             server_failure=answered_by_apache)
    by_apache = collections.Counter(
        result.status for result in server.results if answered_by_apache(result))
    logged = server.error_log_counts()
    figures.add("graceful restarts", "%d; Apache's own 503s %d (its log: %d), 500s %d (%d)" % (
        len(faults.done), by_apache[503], logged[apache.UNABLE_TO_CONNECT], by_apache[500],
        logged[apache.TRUNCATED]))
    if len(faults.done) != 2:
        problems.append("%d graceful restarts were made, expected 2" % len(faults.done))
    for status, line in ((503, apache.UNABLE_TO_CONNECT), (500, apache.TRUNCATED)):
        if logged[line] < by_apache[status]:
            problems.append("%d requests were answered %d without the site, yet Apache's log "
                            "says %r only %d times" % (by_apache[status], status, line,
                                                       logged[line]))
    for line in apache.DAEMON_CRASHED:
        if logged[line]:
            problems.append("Apache's log says %r %d times" % (line, logged[line]))
    if len(daemons_seen(server)) < 2 * PROCESSES:
        problems.append("the daemons served were %s: the graceful restarts replaced none" % (
            sorted(daemons_seen(server)),))
    judge(problems, server, database)
