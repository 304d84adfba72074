"""A real primary and streaming replica: the pinning middleware's read-your-writes promise
(issue 5). The standby is made with ``pg_basebackup -R`` from this process's throwaway cluster
and replays the primary's WAL asynchronously; alias ``pg_standby`` reads the replica's copy of
database ``master``."""
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
