"""A real primary and streaming replica: the pinning middleware's read-your-writes promise
(issue 5). The standby is made with ``pg_basebackup -R`` from this process's throwaway cluster
and replays the primary's WAL asynchronously; alias ``pg_standby`` reads the replica's copy of
database ``master``."""
import logging
import sys
import threading
import time

import pytest

import support
from support import requires_postgres
from web import settings_changed

pytestmark = requires_postgres
REPLICATION_TIMEOUT = 60


@pytest.fixture(scope="module")
def standby():
    from django.conf import settings
    from django.db import connections

    server = support.postgres_cluster.start_standby()
    alias = dict(connections.databases["pg_master"], PORT=str(server.port))
    for databases in (connections.databases, settings.DATABASES):
        databases["pg_standby"] = alias
    try:
        yield server
    finally:
        connections["pg_standby"].close()
        for databases in (connections.databases, settings.DATABASES):
            databases.pop("pg_standby", None)
        server.stop()


def scalar(alias, sql, params=()):
    return support.execute(sql, params, alias=alias, fetch=True)[0][0]


def replicated(timeout=REPLICATION_TIMEOUT):
    """Wait (bounded) until the standby has replayed everything the primary wrote so far."""
    # The insert position: with synchronous_commit off (tests/pg_cluster.py), a commit returns
    # before its WAL is written, so the write position may still be behind it.
    target = scalar("pg_master", "SELECT pg_current_wal_insert_lsn()::text")
    deadline = time.time() + timeout
    while time.time() < deadline:
        behind = scalar(
            "pg_standby",
            "SELECT COALESCE(pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn()), 1)", [target],
        )
        support.commit("pg_standby")
        if behind <= 0:
            return
        time.sleep(0.05)  # the standby's own process replays: nothing here to join
    raise AssertionError("the standby did not replay %s within %ss" % (target, timeout))


@pytest.fixture
def notes(standby):
    support.execute("DROP TABLE IF EXISTS notes", alias="pg_master")
    support.execute("CREATE TABLE notes (text VARCHAR(40))", alias="pg_master")
    support.commit("pg_master")
    replicated()
    yield
    support.execute("SELECT pg_wal_replay_resume()", alias="pg_standby")
    support.commit("pg_standby")


def test_the_replica_is_a_separate_read_only_server_that_follows_master(notes):
    assert scalar("pg_standby", "SELECT pg_is_in_recovery()") is True
    assert scalar("pg_master", "SELECT pg_is_in_recovery()") is False
    assert scalar("pg_standby", "SELECT inet_server_port()") != scalar(
        "pg_master", "SELECT inet_server_port()")
    support.execute("INSERT INTO notes VALUES ('replicated')", alias="pg_master")
    support.commit("pg_master")
    replicated()
    assert support.execute("SELECT text FROM notes", alias="pg_standby", fetch=True) == [
        ("replicated",)]


def test_a_write_sent_to_the_replica_fails_loudly(notes):
    from django.db.utils import DatabaseError

    with pytest.raises(DatabaseError) as raised:
        support.execute("INSERT INTO notes VALUES ('lost')", alias="pg_standby")
    support.rollback("pg_standby")
    assert "read-only" in str(raised.value)
    assert scalar("pg_master", "SELECT COUNT(*) FROM notes") == 0


def test_the_writer_reads_its_writes_from_master_while_others_read_the_replica(notes):
    from django.test import Client

    from test_middleware import middleware_settings, styles

    # Hold the replica back, so that a read from it cannot see the new row yet.
    support.execute("SELECT pg_wal_replay_pause()", alias="pg_standby")
    support.commit("pg_standby")
    config = {"ROUTE_WRITES": {"pg_standby": "pg_master"}, "STICKY_SECONDS": 30}
    with middleware_settings(styles()[-1], config):
        writer, reader = Client(), Client()
        posted = writer.post("/replica-notes/", {"text": "mine"})
        assert posted.content.decode() == "master:mine", "a write must go to master"
        assert writer.get("/replica-notes/").content.decode() == "master:mine", (
            "the writer, pinned for STICKY_SECONDS, reads its own write from master")
        assert reader.get("/replica-notes/").content.decode() == "replica:", (
            "another client reads the replica, which has not replayed the write yet")
        support.execute("SELECT pg_wal_replay_resume()", alias="pg_standby")
        support.commit("pg_standby")
        replicated()
        assert reader.get("/replica-notes/").content.decode() == "replica:mine"


class _Records(logging.Handler):
    """The connlocal_shim logger's records, kept."""

    def __init__(self):
        logging.Handler.__init__(self)
        self.records = []

    def emit(self, record):
        self.records.append(record)


FAULT_CLIENTS = 6
DOWN_SECONDS = 3  # the replica stays down this long, under load
DOWNTIME = 1  # REPLICA_DOWNTIME: it is tried again that often meanwhile


def test_reads_fall_back_to_master_while_the_replica_is_down_and_come_back(notes, standby):
    # Issue 25: the replica is shut down under load (smart: new connections refused, sessions
    # open finish), stays down DOWN_SECONDS, starts again. Every request must be served, every
    # write by master, reads by master while the replica is down, and by the replica again
    # once it is back; going down and coming back each logged once.
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections

    import web
    from test_middleware import middleware_settings, styles

    config = {"ROUTE_WRITES": {"pg_standby": "pg_master"}, "REPLICA_DOWNTIME": DOWNTIME}
    records = _Records()
    logger = logging.getLogger("connlocal_shim")
    logger.addHandler(records)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    answers = []  # (started, ended, method, status, body)
    stop = threading.Event()
    phases = {}

    def client(number):
        sent = 0
        while not stop.is_set():
            sent += 1
            method = "POST" if sent % 5 == 0 else "GET"
            started = time.time()
            try:
                status, text, _ = web.http(
                    server.url + "/replica-notes/", method,
                    form={"text": "c%d-%d" % (number, sent)} if method == "POST" else None)
            except Exception as error:  # a refused or broken request is an answer too
                status, text = None, "%s: %s" % (type(error).__name__, error)
            answers.append((started, time.time(), method, status, text))

    try:
        with middleware_settings(styles()[-1], config):
            # The test's own session would hold the smart shutdown back.
            connections["pg_standby"].close()
            with web.ThreadedServer(WSGIHandler()) as server:
                clients = [threading.Thread(target=client, args=(number,))
                           for number in range(FAULT_CLIENTS)]
                for thread in clients:
                    thread.start()
                time.sleep(1)
                phases["halting"] = time.time()
                standby.halt("smart")
                phases["halted"] = time.time()
                time.sleep(DOWN_SECONDS)
                phases["resuming"] = time.time()
                standby.resume()
                phases["resumed"] = time.time()
                deadline = time.time() + 30
                while time.time() < deadline:
                    if any(a[0] > phases["resumed"] + DOWNTIME and a[4].startswith("replica:")
                           for a in list(answers)):
                        break
                    time.sleep(0.1)
                time.sleep(0.5)
                stop.set()
                for thread in clients:
                    thread.join(60)
    finally:
        stop.set()
        logger.removeHandler(records)
        logger.setLevel(previous_level)

    failed = [a for a in answers if a[3] != 200]
    writes = [a for a in answers if a[2] == "POST"]
    down_reads = [a for a in answers if a[2] == "GET"
                  and phases["halted"] <= a[0] and a[1] <= phases["resuming"]]
    back_reads = [a for a in answers if a[2] == "GET" and a[0] > phases["resumed"] + DOWNTIME]
    warnings = [r for r in records.records if r.levelno == logging.WARNING
                and "replica 'pg_standby' is unreachable" in r.getMessage()]
    infos = [r for r in records.records if r.levelno == logging.INFO
             and "replica 'pg_standby' answers again" in r.getMessage()]
    sys.stdout.write(
        "\nreplica down under load: %d requests (%d writes), %d failed; %d reads while down, "
        "%s by master; %d reads after, %d by the replica; logged %d down, %d back\n" % (
            len(answers), len(writes), len(failed), len(down_reads),
            sum(1 for a in down_reads if a[4].startswith("master:")), len(back_reads),
            sum(1 for a in back_reads if a[4].startswith("replica:")), len(warnings),
            len(infos)))
    assert not failed, "requests failed: %s" % failed[:5]
    assert writes and all(a[4].startswith("master:") for a in writes), \
        "a write was not answered by master: %s" % [a for a in writes if not a[4].startswith(
            "master:")][:5]
    assert down_reads and all(a[4].startswith("master:") for a in down_reads), (
        "reads while the replica was down were not all served by master: %s"
        % [a for a in down_reads if not a[4].startswith("master:")][:5])
    assert any(a[4].startswith("replica:") for a in back_reads), \
        "reads did not go back to the replica once it was up again"
    assert len(warnings) == 1 and len(infos) == 1, (
        "going down and coming back must be logged once each: %s"
        % [r.getMessage() for r in records.records])
