"""Across os.fork(): a forked child (gunicorn --preload, uWSGI's master, multiprocessing,
Celery's prefork pool) has only the thread that forked, and its next threads usually get the
identities of the parent's other threads again (glibc reuses a dead thread's stack). Django 1.4
starts such a thread with no connection (its threading.local is new), and keeps the forking
thread's own. So must every per-thread table of the shim: identity.after_fork_in_child()."""
import gc
import json
import os
import threading
import traceback
import weakref

import pytest

import support
from support import ThreadResult
from test_routing import OuterTransaction

FEATURES = support.original_features()
BACKPORTED = FEATURES.thread_local_handler == "missing"
ATTEMPTS = 50  # threads started in the child until one gets the parent thread's identity

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


def connections():
    from django.db import connections

    return connections


def get_ident():
    from connlocal_shim.identity import get_ident

    return get_ident()


def in_forked_child(func):
    """Run ``func()`` in a forked child of this process (from the calling thread) and return
    what it returned, through a pipe as JSON; raise with the child's traceback if it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        try:
            os.close(read_end)
            try:
                result = {"value": func()}
            except BaseException:
                result = {"error": traceback.format_exc()}
            data = json.dumps(result).encode("utf-8")
            while data:
                data = data[os.write(write_end, data):]
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert chunks, "the forked child wrote nothing"
    result = json.loads(b"".join(chunks).decode("utf-8"))
    if "error" in result:
        raise AssertionError("in the forked child:\n%s" % result["error"])
    return result["value"]


def in_thread_with_identity(ident, func):
    """Start threads until one has identity ``ident`` (what a child's new thread usually
    gets), run ``func()`` there and return {"reused": bool, "value": what it returned}."""
    outcome = {"reused": False, "value": None}

    def attempt():
        if get_ident() == ident:
            outcome["reused"] = True
            outcome["value"] = func()

    for _ in range(ATTEMPTS):
        ThreadResult(attempt).result()
        if outcome["reused"]:
            break
    return outcome


def child_keeps_other_threads_locals():
    """Whether a forked child keeps its copies of the other threads' threading.local values
    (Python 2.7), rather than freeing them at fork as Python 3 does (3.6 included, measured).
    Where it frees them, mysqlclient's close of a parent thread's connection ends that
    thread's server session in the parent: Python's behaviour, not ours to test."""
    local, ready, release = threading.local(), threading.Event(), threading.Event()

    class Value(object):
        pass

    refs = []

    def hold():
        local.value = Value()
        refs.append(weakref.ref(local.value))
        ready.set()
        release.wait(30)

    holder = ThreadResult(hold)
    assert ready.wait(30), "the probe's thread did not start"
    try:
        return in_forked_child(lambda: refs[0]() is not None)
    finally:
        release.set()
        holder.result()


def parent_connections_kept():
    """Whether a forked child leaves the parent's other threads' connections unreleased: the
    backport's (kept on purpose), or Django's own threading.local where the child keeps them."""
    return BACKPORTED or child_keeps_other_threads_locals()


def session_id(alias):
    """The server session behind ``alias`` in this thread (None on sqlite)."""
    kind = support.database_kind(alias)
    if kind == "postgres":
        return support.execute("SELECT pg_backend_pid()", alias=alias, fetch=True)[0][0]
    if kind == "mysql":
        return support.execute("SELECT CONNECTION_ID()", alias=alias, fetch=True)[0][0]
    return None


def in_managed_transaction(alias):
    from django.db import transaction

    wrapper = connections()[alias]
    if hasattr(wrapper, "in_atomic_block"):  # Django 1.6+
        return bool(wrapper.in_atomic_block)
    return bool(transaction.is_managed(using=alias))


def per_thread_tables_holding(ident):
    """The shim's per-thread tables that hold an entry for ``ident`` (white box, beside the
    behaviour the tests check)."""
    from connlocal_shim.identity import PerThread

    return sorted(
        repr(table.factory) for table in gc.get_objects()
        if isinstance(table, PerThread) and ident in table.by_ident
    )


def fresh_table(alias, table):
    support.execute("CREATE TABLE IF NOT EXISTS %s (what VARCHAR(20))" % table, alias=alias)
    support.execute("DELETE FROM %s" % table, alias=alias)
    support.commit(alias)


def count(alias, table):
    return support.execute("SELECT COUNT(*) FROM %s" % table, alias=alias, fetch=True)[0][0]


class ParentThread(object):
    """A thread of the parent that opens a connection to ``alias`` and holds it, in an open
    transaction with a row it wrote, while the test forks; ``body()`` runs in it first."""

    def __init__(self, alias, table, body=None):
        self.alias, self.table, self.body = alias, table, body
        self.seen = {}
        self.ready, self.release = threading.Event(), threading.Event()
        self.worker = ThreadResult(self.run)
        assert self.ready.wait(30), "the parent's thread did not start"

    def run(self):
        try:
            with OuterTransaction(self.alias):
                support.execute("INSERT INTO %s VALUES ('uncommitted')" % self.table,
                                alias=self.alias)
                self.seen.update(
                    ident=get_ident(), wrapper=id(connections()[self.alias]),
                    session=session_id(self.alias),
                )
                cleanup = self.body(self.seen) if self.body is not None else None
                self.ready.set()
                self.release.wait(60)
                if cleanup is not None:
                    cleanup()
                # After the child ran a thread with this identity, and ended. Where the child
                # freed its copy of this thread's connection (see parent_connections_kept),
                # mysqlclient's close may have ended this session: recorded, not raised.
                try:
                    self.seen.update(session_after=session_id(self.alias),
                                     rows_after=count(self.alias, self.table))
                except Exception as error:
                    self.seen.update(after_error="%s: %s" % (type(error).__name__, error))
        finally:
            self.ready.set()

    def finish(self):
        self.release.set()
        self.worker.result()
        return self.seen


@support.parametrize_over_databases(kinds=("sqlite", "postgres", "mysql"))
def test_a_forked_childs_thread_starts_without_the_parent_threads_connection(aliases):
    alias = aliases["master"]
    fresh_table(alias, "fork_rows")
    forking_wrapper = id(connections()[alias])
    parent = ParentThread(alias, "fork_rows")
    try:
        ident = parent.seen["ident"]

        def child():
            tables = per_thread_tables_holding(ident)

            def probe():
                wrapper = connections()[alias]
                opened = wrapper.connection is not None
                return {
                    "wrapper": id(wrapper), "opened_before_use": opened,
                    "managed": in_managed_transaction(alias),
                    "rows": count(alias, "fork_rows"), "session": session_id(alias),
                }

            outcome = in_thread_with_identity(ident, probe)
            gc.collect()  # what the child dropped would be freed (and closed) by now
            outcome.update(tables=tables, forking_wrapper=id(connections()[alias]))
            return outcome

        outcome = in_forked_child(child)
    finally:
        seen = parent.finish()
    if not outcome["reused"]:
        pytest.skip("no thread of the forked child got the identity of the parent's thread "
                    "in %d tries: thread identities are not reused after fork here" % ATTEMPTS)
    found = outcome["value"]
    assert found["wrapper"] != seen["wrapper"], "the child's thread got the parent's wrapper"
    assert not found["opened_before_use"], "the child's thread got an open DB-API connection"
    assert not found["managed"], "the child's thread is in the parent thread's transaction"
    assert found["rows"] == 0, "the child's thread sees a row the parent's thread never committed"
    if found["session"] is not None:
        assert found["session"] != seen["session"], "the child's thread used the parent's session"
    assert outcome["forking_wrapper"] == forking_wrapper, \
        "the forking thread keeps its own wrapper in the child, as on Django 1.4"
    if parent_connections_kept():
        assert "after_error" not in seen, "the child broke the parent's connection: %s" % (
            seen["after_error"])
        assert seen["session_after"] == seen["session"]
        assert seen["rows_after"] == 1, "the parent's transaction was disturbed by the child"
    assert outcome["tables"] == [], "the child's tables still hold the parent's thread"


def test_a_forked_childs_thread_has_none_of_the_parent_threads_routes():
    from connlocal_shim import route_connections, separate_connection

    fresh_table("default", "fork_routes")

    def route_and_hold(seen):
        blocks = [route_connections(default="other"), separate_connection("audit")]
        for block in blocks:
            block.__enter__()
        seen["routed_to"] = connections()["default"].settings_dict["NAME"]

        def leave():
            for block in reversed(blocks):
                block.__exit__(None, None, None)

        return leave

    parent = ParentThread("default", "fork_routes", route_and_hold)
    try:
        ident = parent.seen["ident"]

        def child():
            tables = per_thread_tables_holding(ident)

            def probe():
                handler = connections()
                before = handler["default"].settings_dict["NAME"]
                with route_connections(default="other"):
                    inside = handler["default"].settings_dict["NAME"]
                return {"before": before, "inside": inside,
                        "after": handler["default"].settings_dict["NAME"]}

            outcome = in_thread_with_identity(ident, probe)
            outcome["tables"] = tables
            return outcome

        outcome = in_forked_child(child)
    finally:
        seen = parent.finish()
    if not outcome["reused"]:
        pytest.skip("no thread of the forked child got the identity of the parent's thread "
                    "in %d tries: thread identities are not reused after fork here" % ATTEMPTS)
    names = dict((alias, connections()[alias].settings_dict["NAME"])
                 for alias in ("default", "other"))
    assert seen["routed_to"] == names["other"]
    assert outcome["value"] == {
        "before": names["default"], "inside": names["other"], "after": names["default"],
    }
    assert outcome["tables"] == [], "the child's tables still hold the parent's thread"
