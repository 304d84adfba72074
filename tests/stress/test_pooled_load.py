"""The legacy site of test_load_faults.py under load through PgBouncer in transaction pooling mode
(tests/pgbouncer.py: a pool of POOL_SIZE server connections for the replica's reads, fewer than
the 16 threads; one of 32 for master, where a writing request holds two at once): no faults,
fewer requests, the same checks of what the database holds, and PgBouncer's view of it.

On Django 1.2-1.5 the site runs twice: as Django ships (every read leaves its transaction open
until the request's end closes the connection, and PgBouncer then closes the server connection
that was lent to it, not being idle) and with OPTIONS autocommit, as docs/databases.rst advises
(a read gives its server connection back at once). Django 1.6+ runs in autocommit mode: once.

Through a pool, server sessions are shared by the site's threads by design: what must hold is
that no transaction's rows belong to two requests (check_rows) and that every request is served.
"""
import collections
import shutil
import sys
import tempfile
import os

import pytest

import gunicorn_server
import loadclient
import pgwatch
import support
from test_load_faults import SCHEMA, check_rows, is_intended, require_worker_class, server_env

THREADS = 16
REQUESTS = int(os.environ.get("CONNLOCAL_STRESS_POOLED_REQUESTS", "2000"))
CLIENTS = THREADS + 8
LOAD_DEADLINE = 300
MASTER, REPLICA = support.PGBOUNCER_DATABASES["master"], support.PGBOUNCER_DATABASES["replica"]
SERVER_STATES = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")


def settings_variants():
    from django.db import transaction

    if hasattr(transaction, "atomic"):
        return [pytest.param(False, id="autocommit-native")]
    return [pytest.param(False, id="as-shipped"), pytest.param(True, id="options-autocommit")]


class PoolSampler(pgwatch.Sampler):
    """Samples PgBouncer's SHOW POOLS for the site's two databases every 20 ms in a thread:
    the most client connections at once, waiting clients, server connections, longest wait."""

    name = "pool-sampler"

    def __init__(self, bouncer, limit=LOAD_DEADLINE + 60):
        pgwatch.Sampler.__init__(self, 0.02, limit)
        self.bouncer = bouncer
        self.max_clients = self.max_waiting = self.max_servers = self.max_wait_us = 0

    def sample(self):
        pools = self.bouncer.pools()
        mine = [pools[name] for name in (MASTER, REPLICA) if name in pools]
        self.max_clients = max(self.max_clients, sum(
            pool["cl_active"] + pool["cl_waiting"] for pool in mine))
        self.max_waiting = max(self.max_waiting, sum(pool["cl_waiting"] for pool in mine))
        self.max_servers = max(self.max_servers, sum(
            pool[state] for pool in mine for state in SERVER_STATES))
        self.max_wait_us = max([self.max_wait_us] + [
            pool["maxwait"] * 1000000 + pool.get("maxwait_us", 0) for pool in mine])
        self.samples += 1


def stats(bouncer):
    """{database: SHOW STATS row}: PgBouncer's totals since it started."""
    return dict((row["database"], row) for row in bouncer.admin("SHOW STATS"))


@support.requires_pgbouncer
@pytest.mark.parametrize("autocommit", settings_variants())
def test_gunicorn_gthread_site_through_pgbouncer(autocommit, stress_report):
    import django

    require_worker_class("gthread")

    bouncer = support.pgbouncer_server
    for database in (MASTER, REPLICA):
        pgwatch.execute_script(database, SCHEMA)
    directory = tempfile.mkdtemp(prefix="connlocal-pooled-")
    log = os.path.join(directory, "gunicorn.log")
    env = server_env(alias="pgb_master", CONNLOCAL_STRESS_PG_MASTER=MASTER,
                     CONNLOCAL_STRESS_PG_REPLICA=REPLICA,
                     CONNLOCAL_STRESS_PG_AUTOCOMMIT="1" if autocommit else "0")
    server = gunicorn_server.GunicornServer("stressproject.wsgi:application", env, log,
                                            workers=1, threads=THREADS)
    problems = []
    before = stats(bouncer)
    try:
        with PoolSampler(bouncer) as sampler:
            with server:
                with loadclient.LoadRun(server.url, loadclient.make_plan(REQUESTS), CLIENTS,
                                        LOAD_DEADLINE) as load:
                    pass
            clients_left = support.pgbouncer_server.clients(MASTER) + \
                support.pgbouncer_server.clients(REPLICA)
        results = sorted(load.results, key=lambda result: result.index)
        duration = load.ended - load.started
        after = stats(bouncer)

        if len(results) < REQUESTS:
            problems.append("only %d of %d requests sent before the deadline" % (
                len(results), REQUESTS))
        failures = [result for result in results if not result.ok and not is_intended(result)]
        for result in failures[:20]:
            problems.append("%s: failed (%s)" % (result.describe(), result.error_kind))
        written, logged = check_rows(results, problems.append, master=MASTER, replica=REPLICA)
        if clients_left:
            problems.append("client connections left once gunicorn stopped: %s" % clients_left)
        if sampler.max_servers > bouncer.pool_sizes[MASTER] + support.pgbouncer.POOL_SIZE:
            problems.append("%d server connections for pools of %d and %d" % (
                sampler.max_servers, bouncer.pool_sizes[MASTER], support.pgbouncer.POOL_SIZE))
    except BaseException:
        sys.stderr.write("gunicorn's log %s:\n%s\n" % (log, server.log_tail()))
        raise
    finally:
        shutil.rmtree(directory, True)

    sessions = collections.Counter()
    for result in results:
        body = result.body or {}
        for session in (body.get("sessions") or []) + [body.get("session")] + [
                (body.get("audit") or {}).get("session")]:
            if session:
                sessions[session] += 1
    transactions = sum(int(after[name]["total_xact_count"]) - int(before.get(name, {}).get(
        "total_xact_count", 0)) for name in (MASTER, REPLICA))
    report = stress_report.add
    report("Django, gunicorn, Python", "%s, %s (gthread), %s" % (
        django.get_version(), gunicorn_server.gunicorn_version(), sys.version.split()[0]))
    report("settings", "OPTIONS autocommit" if autocommit else (
        "as shipped" if len(settings_variants()) == 2 else "as shipped (autocommit mode)"))
    report("PgBouncer", "%s, transaction pooling, pools of %d (master), %d (replica), %d threads"
           % (bouncer.version, bouncer.pool_sizes[MASTER], support.pgbouncer.POOL_SIZE, THREADS))
    report("requests", "%d in %.1fs (%.0f/s), %d failed" % (
        len(results), duration, len(results) / duration, len(failures)))
    report("rows in master", "writes %d, audit_log %d" % (written, logged))
    report("client connections", "at most %d at once, %d waiting at most, longest wait %.1f ms"
           % (sampler.max_clients, sampler.max_waiting, sampler.max_wait_us / 1000.0))
    report("server connections", "at most %d at once; %d server sessions served the requests" % (
        sampler.max_servers, len(sessions)))
    report("transactions through PgBouncer", "%d (%.1f per request)" % (
        transactions, transactions / float(max(len(results), 1))))
    report("  sampled", "%d times" % sampler.samples)
    assert not problems, "%d problems:\n%s" % (len(problems), "\n".join(problems[:40]))
