"""gunicorn's -k gevent and -k eventlet workers serving a Django 1.3 site (greenproject/), with
and without --preload, on an sqlite file and on this process's throwaway PostgreSQL cluster.

Without --preload the worker monkey-patches, then imports wsgi.py, which installs
connlocal_shim: the patch runs first. With --preload the master imports wsgi.py (installs)
before it forks, and the worker patches after: the other order, in the same process.

REQUESTS requests, CLIENTS at a time (tests/stress/loadclient.py: threads and one HTTP
connection per request), of four kinds: reads, writes in a transaction, writes rolled back by
an exception, reads that log an audit row through separate_connection. The views yield to the
other greenlets between their queries (on PostgreSQL inside the transaction) and report the
connection behind each query with the server-side times of their first and last query. The
test fails if any request failed, if two requests ever held one connection at the same moment
(the connections counted: PostgreSQL sessions, or DB-API connection objects of the worker), if
a request's queries changed connection, if the rows written are not exactly those of the
committed requests, each in its own transaction, or if connections stay open while the server
idles (PostgreSQL sessions of the site; the worker's file descriptors on the sqlite file).
"""
import os
import sys

import pytest

import greenlib
import greenload
import gunicorn_server
from support import requires_postgres

HERE = os.path.dirname(os.path.abspath(__file__))
GREENLETS = 32  # --worker-connections: more than the clients, so that none waits


@pytest.mark.parametrize("database", [
    "sqlite", pytest.param("postgres", marks=requires_postgres)])
@pytest.mark.parametrize("preload", [False, True], ids=["nopreload", "preload"])
@pytest.mark.parametrize("worker_class", ["gevent", "eventlet"])
def test_gunicorn_greenlet_worker_under_load(worker_class, preload, database, workdir, figures):
    import django

    greenlib.require(worker_class, worker_class)
    greenlib.require("gunicorn", "gunicorn")
    label = "gunicorn -k %s%s" % (worker_class, " --preload" if preload else "")
    figures.add("Django, gunicorn, Python", "%s, %s (%s), %s" % (
        django.get_version(), gunicorn_server.gunicorn_version(), label, sys.version.split()[0]))
    site = greenload.Site(database, workdir)
    server = gunicorn_server.GunicornServer(
        "greenproject.wsgi:application", site.env(), os.path.join(workdir, "gunicorn.log"),
        worker_class=worker_class, connections=GREENLETS, preload=preload, chdir=HERE,
        ready_timeout=30, graceful_timeout=greenload.GRACEFUL_TIMEOUT,
    )
    problems = greenload.serve_and_judge(server, site, figures, label)
    assert not problems, "%s on %s: %d problems:\n%s" % (
        label, database, len(problems), "\n".join(problems[:40]))
