"""django-celery 3.0 beside connlocal_shim (issue 24): a worker of the client site,
``manage.py celery worker -P threads`` or ``-P eventlet`` with CONCURRENCY tasks at a time,
djcelery listed before connlocal_shim in INSTALLED_APPS or after it, the broker in the site's
database (kombu's Django transport), on an sqlite file and on a PostgreSQL database.

TASKS tasks each open their connection, hold a transaction open for HOLD seconds (other tasks
run meanwhile) and record what they used (run_celery.py collects the rows). The test fails if
a task failed or is missing, if the worker's Django ran without the backport, if two tasks
that ran at the same time used one DB-API connection or PostgreSQL session, if a task found
its thread's connection already open (django-celery closes it before and after each task:
``DjangoLoader.on_task_init`` and ``on_process_cleanup``), if no two tasks ever overlapped
(the test would prove nothing), or, on PostgreSQL, if a task's session is still open once the
worker idles."""
import os
import signal
import subprocess
import sys
import time

import pytest

import support
from clientsupport import HERE, ORDERS, require, result_of, run_in_site, site_env

POOLS = ("threads", "eventlet")
CONCURRENCY = 4
TASKS = 40
HOLD = 0.2
READY_TIMEOUT = 60
DONE_TIMEOUT = 60
IDLE_TIMEOUT = 10
STEP_TIMEOUT = 120
RUN_CELERY = os.path.join(HERE, "run_celery.py")


class Worker(object):
    """``manage.py celery worker`` of the site, its output in a file, in a process group of its
    own (stopped with everything it started)."""

    def __init__(self, directory, env, pool):
        self.log_path = os.path.join(directory, "worker.log")
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [support.HERE] + [p for p in [full_env.get("PYTHONPATH")] if p])
        full_env.update(env)
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "celery", "worker", "-P", pool,
             "-c", str(CONCURRENCY), "-l", "info"],
            stdout=self.log, stderr=subprocess.STDOUT, env=full_env, cwd=directory,
            preexec_fn=os.setsid)

    def output(self):
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")

    def wait_ready(self):
        deadline = time.time() + READY_TIMEOUT
        while time.time() < deadline:
            if " ready." in self.output():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        pytest.fail("the Celery worker did not get ready in %ss (exit status %s):\n%s" % (
            READY_TIMEOUT, self.process.returncode, self.output()[-6000:]), pytrace=False)

    def stop(self):
        """Celery's warm shutdown (SIGTERM: finish the tasks under way), then SIGKILL after 30 s;
        return whether it exited on its own."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        deadline = time.time() + 30
        while self.process.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        exited = self.process.poll() is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass  # the group is gone
        self.process.wait()
        self.log.close()
        return exited


def overlapping_pairs_sharing(runs, key):
    """Pairs of tasks whose held intervals overlap and that used the same ``key``."""
    pairs = []
    for index, first in enumerate(runs):
        for second in runs[index + 1:]:
            if first[key] is not None and first[key] == second[key] \
                    and first["started"] < second["ended"] and second["started"] < first["ended"]:
                pairs.append((first["number"], second["number"], first[key]))
    return pairs


def most_at_once(runs):
    events = sorted([(run["started"], 1) for run in runs] + [(run["ended"], -1) for run in runs],
                    key=lambda event: (event[0], event[1]))
    current = peak = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


def report(label, lines):
    sys.stdout.write("\n%s\n" % label)
    for name, value in lines:
        sys.stdout.write("    %-28s %s\n" % (name + ":", value))


@pytest.mark.parametrize("database", [
    "sqlite", pytest.param("postgres", marks=support.requires_postgres)])
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("order", ORDERS)
def test_celery_tasks_own_their_connections(order, pool, database, site_dir):
    require("djcelery", "django-celery==3.0.23", era=True, find_only=True)
    if pool == "eventlet":
        require("eventlet", "eventlet==0.30.2")
    extra = {}
    if database == "postgres":
        name = "celery_%s_%s" % (order.replace("-", "_"), pool)
        support.postgres_cluster._psql('CREATE DATABASE "%s"' % name)
        extra["CONNLOCAL_CLIENTS_PG_DEFAULT"] = name
    env = site_env(site_dir, "celery", order, postgres=database == "postgres", **extra)

    def site(*args):
        finished = run_in_site(site_dir, list(args), env, STEP_TIMEOUT)
        assert not finished.timed_out and finished.returncode == 0, (
            "Celery, %s: python %s failed\n%s" % (order, " ".join(args), finished.describe()))
        return finished

    site("manage.py", "syncdb", "--noinput")
    worker = Worker(site_dir, env, pool)
    try:
        worker.wait_ready()
        began = time.time()
        run = "%s-%s-%s" % (order, pool, database)
        site(RUN_CELERY, "send", run, str(TASKS), str(HOLD))
        deadline = time.time() + DONE_TIMEOUT
        while True:
            found = result_of(site(RUN_CELERY, "collect", run))
            if len(found["runs"]) >= TASKS or time.time() > deadline:
                break
            time.sleep(0.3)
        took = time.time() - began
        runs = found["runs"]
        # Idle: every session a task opened is closed (on sqlite there is nothing to ask).
        task_sessions = set(r["session"] for r in runs if r["session"] is not None)
        deadline = time.time() + IDLE_TIMEOUT
        while task_sessions & set(found["sessions"]) and time.time() < deadline:
            time.sleep(0.3)
            found = result_of(site(RUN_CELERY, "collect", run))
        left_open = sorted(task_sessions & set(found["sessions"]))
    finally:
        exited = worker.stop()
    output = worker.output()

    label = "test_celery_tasks_own_their_connections[%s-%s-%s]" % (order, pool, database)
    lines = [
        ("tasks", "%d of %d in %.1fs, %d at a time (%s pool)" % (
            len(runs), TASKS, took, CONCURRENCY, pool)),
        ("at most at once", most_at_once(runs)),
        ("pool threads or greenlets", len(set(r["worker"] for r in runs))),
        ("held by two at once", "%d pairs" % len(overlapping_pairs_sharing(runs, "dbapi"))),
        ("found open at task start", sum(1 for r in runs if r["carried"])),
    ]
    if database == "postgres":
        lines += [("server sessions", "%d distinct, %d of them open when idle" % (
            len(task_sessions), len(left_open)))]
    report(label, lines)

    failed = [line for line in output.splitlines()
              if "Traceback" in line or "ERROR/" in line or "raised exception" in line]
    assert not failed, "the worker logged failures:\n%s" % output[-6000:]
    assert exited, "the worker did not stop within 30 s of SIGTERM:\n%s" % output[-3000:]
    assert sorted(r["number"] for r in runs) == list(range(TASKS)), (
        "tasks missing: %s\n%s" % (
            sorted(set(range(TASKS)) - set(r["number"] for r in runs)), output[-6000:]))
    assert all(r["shim"] for r in runs), "the worker's Django ran without the backport"
    assert most_at_once(runs) >= 2, \
        "no two tasks overlapped: the run cannot show that concurrent tasks share nothing"
    assert not overlapping_pairs_sharing(runs, "dbapi"), \
        "concurrent tasks used one DB-API connection: %s" % overlapping_pairs_sharing(runs, "dbapi")
    assert not [r["number"] for r in runs if r["carried"]], (
        "tasks found their thread's connection still open (django-celery closes it around "
        "each task): %s" % [r["number"] for r in runs if r["carried"]])
    if database == "postgres":
        assert not overlapping_pairs_sharing(runs, "session")
        # django-celery closes the connection around each task: each opened a session of its own.
        assert len(task_sessions) == TASKS, (
            "%d tasks, %d distinct sessions" % (TASKS, len(task_sessions)))
        assert not left_open, "sessions of finished tasks still open when idle: %s" % left_open
