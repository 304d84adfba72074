"""1.3-era code that treats ``django.db.connections._connections`` as the dict it was on Django
1.2/1.3 (django-liveserver 0.1a2 sets ``connections._connections[alias] = conn`` in its server
thread; other code reads it with ``in``, ``.get()``, ``.values()``, ``.items()``, iterates it or
deletes from it). Under the backport that storage is the calling thread's own dict of
connections: each operation acts on the calling thread's wrappers only. Real threads, each
checked while the other holds its own state.

Where the handler is natively thread-local (Django 1.4+), ``_connections`` is Django's own
storage, which was never a dict: nothing to check there.
"""
import threading

import pytest

import support
from support import ThreadResult

FEATURES = support.original_features()
pytestmark = pytest.mark.skipif(
    FEATURES.thread_local_handler != "missing",
    reason="handler already thread-local: Django's own connections._connections (a "
    "threading.local or asgiref Local since ticket #17258), never a dict",
)


def handler():
    from django.db import connections

    return connections


def storage():
    return handler()._connections


class Step(object):
    """Two threads taking turns: ``wait()`` blocks until the other side ``go()``es."""

    def __init__(self):
        self.event = threading.Event()

    def go(self):
        self.event.set()

    def wait(self):
        assert self.event.wait(30), "the other thread never reached its step"


def test_setitem_repoints_an_alias_for_the_calling_thread_only():
    set_done, checked = Step(), Step()

    def setter():
        other = handler()["other"]
        try:
            storage()["default"] = other
        finally:
            set_done.go()  # also when it raised: the onlooker must not wait for nothing
        checked.wait()
        return handler()["default"] is other, handler()["default"].alias

    def onlooker():
        set_done.wait()
        try:
            untouched = storage().get("default") is None  # before this thread opens its own
            return handler()["default"].alias, untouched
        finally:
            checked.go()

    setting, looking = ThreadResult(setter), ThreadResult(onlooker)
    looked = looking.result()
    assert setting.result() == (True, "other"), \
        "connections._connections['default'] = conn must re-point 'default' for its thread"
    assert looked == ("default", True), \
        "another thread's connections._connections[...] = conn must not reach this thread"


def test_membership_get_and_del_see_the_calling_thread_only():
    opened, checked, deleted = Step(), Step(), Step()

    def owner():
        try:
            found = {"before": ("memory" in storage(), storage().get("memory"))}
            wrapper = handler()["memory"]
            found["after"] = ("memory" in storage(), storage().get("memory") is wrapper)
        finally:
            opened.go()
        checked.wait()
        del storage()["memory"]
        found["deleted"] = ("memory" in storage(), storage().get("memory"))
        found["fresh"] = handler()["memory"] is not wrapper
        deleted.go()
        return found

    def onlooker():
        opened.wait()
        try:
            return "memory" in storage(), storage().get("memory")
        finally:
            checked.go()

    owning, looking = ThreadResult(owner), ThreadResult(onlooker)
    found = owning.result()
    assert looking.result() == (False, None), \
        "a thread must not see another thread's connection in connections._connections"
    assert found["before"] == (False, None)
    assert found["after"] == (True, True)
    assert found["deleted"] == (False, None), "del connections._connections[alias]"
    assert found["fresh"], "after del, connections[alias] opens a new wrapper"


def test_keys_values_and_items_are_the_calling_thread_s():
    ready = {"first": Step(), "second": Step()}
    done = {"first": Step(), "second": Step()}

    def listing(me, other, aliases):
        wrappers = dict((alias, handler()[alias]) for alias in aliases)
        ready[me].go()
        try:
            ready[other].wait()  # both threads hold their connections now
            return (
                sorted(storage()),
                sorted(id(wrapper) for wrapper in storage().values()),
                sorted((alias, id(wrapper)) for alias, wrapper in storage().items()),
                sorted(id(wrapper) for wrapper in wrappers.values()),
                sorted((alias, id(wrapper)) for alias, wrapper in wrappers.items()),
            )
        finally:
            done[me].go()
            done[other].wait()  # ... until both have listed

    first = ThreadResult(listing, "first", "second", ("default", "memory"))
    second = ThreadResult(listing, "second", "first", ("other",))
    for result, aliases in ((first.result(), ["default", "memory"]), (second.result(), ["other"])):
        keys, values, items, own_values, own_items = result
        assert keys == aliases, "iterating connections._connections: this thread's aliases"
        assert values == own_values, ".values(): this thread's wrappers"
        assert items == own_items, ".items(): this thread's (alias, wrapper) pairs"


def test_a_shared_in_memory_database_reaches_a_server_thread_as_django_liveserver_does():
    """django-liveserver 0.1a2's LiveServerThread.run(): the test thread's in-memory sqlite
    connection, marked shareable, stored into the server thread's connections._connections."""
    wrapper = handler()["memory"]
    if wrapper.connection is not None:
        # Opened while the suite's install/uninstall cycles had the backport off, it may keep
        # Python's same-thread check (README, "Limits worth knowing"): open it afresh.
        wrapper.connection.close()
        wrapper.connection = None
    cursor = wrapper.cursor()
    cursor.execute("CREATE TABLE IF NOT EXISTS liveserver_style (name TEXT)")
    cursor.execute("DELETE FROM liveserver_style")
    cursor.execute("INSERT INTO liveserver_style VALUES ('made by the test thread')")
    support.commit("memory")
    wrapper.allow_thread_sharing = True

    def server_thread(conn):
        conn.allow_thread_sharing = True
        storage()["memory"] = conn
        rows = support.execute("SELECT name FROM liveserver_style", alias="memory", fetch=True)
        return handler()["memory"] is conn, rows

    try:
        same, rows = support.in_thread(server_thread, wrapper)
    finally:
        wrapper.allow_thread_sharing = False
    assert same, "connections._connections['memory'] = conn in the server thread"
    assert rows == [("made by the test thread",)], \
        "the server thread must query the test thread's in-memory database"
