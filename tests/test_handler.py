"""django.db.connections is thread-local, and an alias can be re-pointed for one thread only
(handler.py; native since Django 1.4, ticket #17258)."""
import gc
import sqlite3
import time
import weakref

import pytest

import support
from support import ThreadResult, in_thread
from test_wrappers import share, unshare

FEATURES = support.original_features()
BACKPORTED = FEATURES.thread_local_handler == "missing"
requires_backport = pytest.mark.skipif(
    not BACKPORTED, reason="handler already thread-local: Django's own handler, nothing backported"
)


def connections():
    from django.db import connections

    return connections


def test_each_thread_gets_its_own_wrapper_per_alias():
    handler = connections()
    mine = dict((alias, handler[alias]) for alias in ("default", "other", "memory"))
    theirs = in_thread(lambda: dict((alias, handler[alias]) for alias in mine))
    for alias in mine:
        assert handler[alias] is mine[alias], "a thread must keep its own wrapper"
        assert theirs[alias] is not mine[alias]
        assert theirs[alias].alias == alias
    assert len(set(id(w) for w in list(mine.values()) + list(theirs.values()))) == 6


def test_the_class_s_getitem_called_as_a_method_gives_the_calling_thread_s_wrapper():
    # How tools call and wrap it: type(connections).__getitem__(connections, alias), or a
    # patch of the class that keeps the original and calls it with the handler.
    handler = connections()
    handler_class = type(handler)
    mine = handler["default"]
    assert handler_class.__getitem__(handler, "default") is mine
    theirs = in_thread(lambda: (handler["default"], handler_class.__getitem__(handler, "default")))
    assert theirs[0] is theirs[1] and theirs[0] is not mine
    with pytest.raises(Exception) as raised:
        handler_class.__getitem__(handler, "no-such-alias")
    assert "no-such-alias" in str(raised.value)
    own = "__getitem__" in vars(handler_class)
    original = vars(handler_class).get("__getitem__")
    kept = handler_class.__getitem__
    seen = []

    def traced_keeping(self, alias):  # the usual shape: the looked-up original, called
        seen.append(alias)
        return kept(self, alias)

    handler_class.__getitem__ = traced_keeping
    try:
        assert handler["default"] is mine
        other = in_thread(lambda: handler["default"])
    finally:
        if own:
            handler_class.__getitem__ = original
        else:
            del handler_class.__getitem__
    assert other is not mine and other.alias == "default"
    assert seen == ["default", "default"]
    assert handler["default"] is mine


def test_assigning_an_alias_repoints_it_for_the_calling_thread_only():
    handler = connections()
    support.execute("CREATE TABLE IF NOT EXISTS only_in_other (x INTEGER)", alias="other")
    support.commit("other")
    main_default = handler["default"]

    def repoint():
        handler["default"] = handler["other"]
        tables = support.execute(
            "SELECT name FROM sqlite_master WHERE name = 'only_in_other'", fetch=True
        )
        return handler["default"].alias, tables

    alias, tables = in_thread(repoint)
    assert alias == "other"
    assert tables == [("only_in_other",)], "queries through 'default' must reach 'other'"
    assert handler["default"] is main_default
    assert support.execute(
        "SELECT name FROM sqlite_master WHERE name = 'only_in_other'", fetch=True
    ) == []


@pytest.mark.skipif(
    FEATURES.handler_delitem == "unavailable",
    reason="the native thread-local handler has no __delitem__ (connlocal_shim adds it only "
    "with the backport)",
)
def test_deleting_an_alias_affects_the_calling_thread_only():
    handler = connections()
    main_other = handler["other"]

    def repoint_then_delete():
        handler["other"] = handler["default"]
        del handler["other"]
        fresh = handler["other"]
        return fresh, fresh.alias, fresh is handler["other"]

    fresh, alias, stable = in_thread(repoint_then_delete)
    assert alias == "other" and stable
    assert fresh is not main_other
    assert handler["other"] is main_other


@requires_backport
def test_deleting_an_alias_not_opened_in_this_thread_is_harmless():
    handler = connections()
    in_thread(lambda: handler.__delitem__("memory"))
    assert handler["memory"].alias == "memory"


@requires_backport
def test_deleting_an_unknown_alias_names_it_and_changes_nothing():
    from django.db.utils import ConnectionDoesNotExist

    handler = connections()
    before = handler._connections.copy()
    with pytest.raises(ConnectionDoesNotExist) as raised:
        del handler["replica"]
    assert "'replica'" in str(raised.value) and "default" in str(raised.value)
    assert handler._connections.copy() == before


@requires_backport
@pytest.mark.parametrize("value", [None, "other", 42, object()])
def test_assigning_something_else_than_a_wrapper_is_refused(value):
    handler = connections()
    before = handler["default"]
    with pytest.raises(TypeError) as raised:
        handler["default"] = value
    assert "DatabaseWrapper" in str(raised.value)
    assert handler["default"] is before


@requires_backport
def test_assigning_with_a_non_string_alias_is_refused():
    handler = connections()
    before = handler._connections.copy()
    with pytest.raises(TypeError) as raised:
        handler[1] = handler["default"]
    assert "aliases are strings" in str(raised.value)
    assert handler._connections.copy() == before


@requires_backport
def test_assigning_a_captured_reference_stores_the_wrapper_it_stands_for():
    from django.db import connection

    handler = connections()

    def assign():
        handler["other"] = connection  # the legacy reference, not a wrapper of its own
        return handler["other"] is handler["default"], handler["other"].alias

    assert in_thread(assign) == (True, "default")


def test_many_threads_query_concurrently_without_sharing_state():
    """8 threads, 300 queries each, through connections[...] and django.db.connection."""
    from django.db import connection

    handler = connections()
    support.execute("CREATE TABLE IF NOT EXISTS concurrency (thread INTEGER, n INTEGER)")
    support.execute("DELETE FROM concurrency")
    support.commit()
    threads, rows = 8, 150

    def work(index):
        own = handler["default"]
        seen = set()
        for n in range(rows):
            cursor = (connection if n % 2 else handler["default"]).cursor()
            cursor.execute("INSERT INTO concurrency VALUES (%s, %s)", [index, n])
            support.commit()
            seen.add(id(handler["default"]))
            cursor = connection.cursor()
            cursor.execute("SELECT COUNT(*) FROM concurrency WHERE thread = %s", [index])
            assert cursor.fetchone()[0] == n + 1
        return own, seen, connection.alias

    workers = [ThreadResult(work, index) for index in range(threads)]
    results = [worker.result(timeout=300) for worker in workers]
    # The wrappers are kept alive in `results`, so their ids cannot have been reused.
    own_ids = [id(own) for own, _, _ in results]
    assert len(set(own_ids)) == threads, "each thread must have had its own wrapper"
    for own, seen, alias in results:
        assert seen == set([id(own)]) and alias == "default"
    counts = support.execute(
        "SELECT thread, COUNT(*) FROM concurrency GROUP BY thread ORDER BY thread", fetch=True
    )
    assert counts == [(index, rows) for index in range(threads)]


# -- a thread that ends ---------------------------------------------------------------------------
# Unpatched Django 1.2/1.3 kept a thread's state of its threading.local wrappers in the thread:
# when the thread ended, that state died, and with it the wrapper's reference to its DB-API
# connection, which closed when its *last* reference went (and stayed open for whoever still
# held it). A rebuilt wrapper refers to itself (its ops, features... point back at it), so
# without the backport's release at thread end it would keep its connection until the cycle
# collector ran, as on Django 1.4. The cycle collector is off in these tests.

def released_when_its_thread_has_ended(wrapper, timeout=10):
    """Whether ``wrapper`` drops its DB-API connection within ``timeout`` seconds. A thread's
    state is torn down just after join() returns: poll for it."""
    deadline = time.time() + timeout
    while wrapper.connection is not None:
        if time.time() > deadline:
            return False
        time.sleep(0.01)
    return True


def freed(reference, timeout=10):
    deadline = time.time() + timeout
    while reference() is not None:
        if time.time() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def no_cycle_collector():
    """The cyclic garbage collector off: what it would close must not count."""
    enabled = gc.isenabled()
    gc.disable()
    yield
    if enabled:
        gc.enable()


@requires_backport
@pytest.mark.parametrize("alias", ["tracked", "tracked_memory"])
def test_a_thread_that_ends_without_closing_frees_its_connection(alias, no_cycle_collector):
    handler = connections()

    def open_and_leave():
        wrapper = handler[alias]
        wrapper.cursor().execute("SELECT 1")
        return wrapper, weakref.ref(wrapper.connection)

    wrapper, dbapi = in_thread(open_and_leave)
    assert released_when_its_thread_has_ended(wrapper)
    assert freed(dbapi), "nobody else held the connection: it must be freed (and so closed)"


@requires_backport
@pytest.mark.parametrize("alias", ["tracked", "tracked_memory"])
def test_a_connection_someone_else_holds_stays_open_after_its_thread_ends(
    alias, no_cycle_collector
):
    # As a test that collects connection.connection from worker threads and closes them
    # itself afterwards: closing them at thread end broke it ("Cannot operate on a closed
    # database"), where Django 1.3 kept each open as long as it was held.
    handler = connections()
    held = []

    def open_hand_over_and_leave():
        wrapper = handler[alias]
        wrapper.cursor().execute("CREATE TABLE IF NOT EXISTS kept (x INTEGER)")
        held.append(wrapper.connection)
        return wrapper

    wrapper = in_thread(open_hand_over_and_leave)
    assert released_when_its_thread_has_ended(wrapper)
    dbapi = held.pop()
    assert dbapi.execute("SELECT COUNT(*) FROM kept").fetchall() == [(0,)]
    dbapi.close()  # once, by its holder
    with pytest.raises(sqlite3.ProgrammingError):
        dbapi.execute("SELECT 1")


@requires_backport
def test_a_thread_that_ends_leaves_shared_and_other_threads_connections_open(
    no_cycle_collector
):
    handler = connections()
    mine = handler["other"]
    mine.cursor().execute("SELECT 1")

    def share_one_route_to_mine_and_end():
        shared = handler["default"]
        shared.cursor().execute("SELECT 1")
        share(shared)
        unshared = handler["memory"]  # released at the end: shows that the thread's end ran
        unshared.cursor().execute("SELECT 1")
        share(mine)
        handler["other"] = mine  # routed to the test thread's wrapper, never restored
        mine.cursor().execute("SELECT 1")
        unshare(mine)
        return shared, shared.connection, unshared

    shared, shared_dbapi, unshared = in_thread(share_one_route_to_mine_and_end)
    assert released_when_its_thread_has_ended(unshared)
    assert shared.connection is shared_dbapi
    assert shared_dbapi.execute("SELECT 2").fetchall() == [(2,)]
    assert mine.connection is not None
    assert support.query(mine, "SELECT 2") == [(2,)]
