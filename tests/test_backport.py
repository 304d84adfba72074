"""install() / uninstall(): idempotent, exact, never half-patched, and nothing lost by
installing late (backport.py)."""
import gc
import logging
import sys
import threading
import traceback
import time
import warnings
import weakref

import pytest

import connlocal_shim
import support
from support import in_thread

FEATURES = support.original_features()
BACKPORTED = FEATURES.needs_backport
requires_backport = pytest.mark.skipif(
    not BACKPORTED,
    reason="handler already thread-local: install() patches nothing, so there is no state to move",
)


def connections():
    from django.db import connections

    return connections


@pytest.fixture
def reinstall():
    """Leave the suite installed, whatever the test did."""
    yield
    connlocal_shim.install()


def snapshot():
    """Every global of every Django and test module, the handler's and the wrappers' classes and
    dicts, and the connection_created receivers: what install may change."""
    import django.db
    from django.db.backends.signals import connection_created

    from test_wrappers import loaded_wrapper_classes

    # Classes an earlier install() rebuilt and nothing uses any more are freed by the cycle
    # collector, whenever it runs: collect them now, or one freed between two snapshots shows
    # as "gone" (it did, with the MariaDB and PgBouncer modules of issue 13 collected too).
    gc.collect()
    state = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name.startswith("django") or name in ("legacy_module",)):
            continue
        for key, value in list(vars(module).items()):
            state[("global", name, key)] = value
    handler = django.db.connections
    state[("handler class",)] = type(handler)
    for key, value in vars(handler).items():
        state[("handler", key)] = value
    state[("connection class",)] = type(django.db.connection)
    for cls in loaded_wrapper_classes():
        for key, value in vars(cls).items():
            state[("class", cls.__module__, cls.__name__, id(cls), key)] = value
    state[("receivers",)] = tuple(connection_created.receivers)
    return state


def differences(before, after):
    changed = []
    for key, value in before.items():
        if key not in after:
            changed.append(("gone", key))
        elif key == ("receivers",):
            if after[key] != value:
                changed.append(("changed", key))
        elif after[key] is not value:
            changed.append(("changed", key))
    return changed


def test_install_is_idempotent_and_thread_safe():
    installation = connlocal_shim.backport._installation
    patches = len(installation.registry)
    start = threading.Event()

    def install_when_told():
        start.wait(30)
        connlocal_shim.install()

    threads = [threading.Thread(target=install_when_told) for _ in range(8)]
    for thread in threads:
        thread.start()
    start.set()
    for thread in threads:
        thread.join(60)
    connlocal_shim.install()
    assert connlocal_shim.backport._installation is installation
    assert len(installation.registry) == patches


def test_uninstall_restores_every_patched_object_exactly(reinstall):
    connlocal_shim.uninstall()
    assert not connlocal_shim.is_installed()
    before = snapshot()
    connlocal_shim.install()
    installed = snapshot()
    if BACKPORTED:
        assert differences(before, installed), "install() changed nothing on a Django without #17258"
    else:
        assert differences(before, installed) == [], "install() must patch nothing here"
    connlocal_shim.uninstall()
    assert differences(before, snapshot()) == []


@requires_backport
def test_uninstall_leaves_alone_what_someone_else_replaced(reinstall):
    import django.db

    handler = django.db.connections
    installed_class = type(handler)
    theirs = type("TheirHandler", (installed_class,), {})
    handler.__class__ = theirs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        connlocal_shim.uninstall()
    try:
        assert type(handler) is theirs
        messages = [str(w.message) for w in caught if w.category is connlocal_shim.ConnlocalShimWarning]
        assert any("django.db.connections" in m and "left as it is" in m for m in messages)
    finally:
        handler.__class__ = connlocal_shim.backport.get_original(handler, "__class__") \
            if connlocal_shim.is_installed() else FEATURES.targets.handler_class


@requires_backport
def test_installing_late_keeps_the_threads_open_connection_and_transaction(reinstall):
    from django.db import transaction

    connlocal_shim.uninstall()
    old = connections()["memory"]
    support.query(old, "CREATE TABLE IF NOT EXISTS late (x INTEGER)")
    support.query(old, "DELETE FROM late")
    transaction.commit_unless_managed(using="memory")
    transaction.enter_transaction_management(using="memory")
    transaction.managed(True, using="memory")
    try:
        cursor = old.cursor()
        cursor.execute("INSERT INTO late VALUES (1)")
        transaction.set_dirty(using="memory")
        dbapi = old.connection

        connlocal_shim.install()
        new = connections()["memory"]
        assert new is not old and threading.local not in type(new).__mro__
        assert new.connection is dbapi, "the open connection must move to the new wrapper"
        assert new.creation.connection is new, "helpers must point at the new wrapper"
        assert transaction.is_managed(using="memory") and transaction.is_dirty(using="memory")
        assert support.query(new, "SELECT x FROM late") == [(1,)]
        transaction.rollback(using="memory")
        assert support.query(new, "SELECT x FROM late") == []
    finally:
        transaction.rollback(using="memory")
        transaction.leave_transaction_management(using="memory")


@requires_backport
def test_status_names_the_sharing_api_in_use_only_while_installed(reinstall):
    from django.db import connections as handler

    assert connlocal_shim.status()["sharing_api"] == "attribute"
    assert hasattr(handler["default"], "allow_thread_sharing")
    connlocal_shim.uninstall()
    assert connlocal_shim.status()["sharing_api"] is None
    assert not hasattr(handler["default"], "allow_thread_sharing")


@requires_backport
def test_uninstalling_keeps_the_threads_open_connection(reinstall):
    wrapper = connections()["memory"]
    support.query(wrapper, "CREATE TABLE IF NOT EXISTS kept (x INTEGER)")
    dbapi = wrapper.connection
    connlocal_shim.uninstall()
    old = connections()["memory"]
    assert threading.local in type(old).__mro__
    assert old.connection is dbapi
    assert support.query(old, "SELECT name FROM sqlite_master WHERE name = 'kept'") == [("kept",)]
    connlocal_shim.install()
    assert connections()["memory"].connection is dbapi


@requires_backport
def test_a_thread_that_uninstalled_keeps_its_connection_open_when_it_ends(reinstall):
    # Uninstall moves the thread's DB-API connection back into Django's own wrapper: the
    # backport's ThreadEnd of that thread must not close it when the thread ends.
    ended = threading.Event()
    watch = []  # the weak reference lives outside the thread's state, or it dies with it

    class Sentinel(object):
        pass

    def uninstall_then_end():
        wrapper = connections()["other"]
        wrapper.cursor().execute("SELECT 1")
        dbapi = wrapper.connection
        connlocal_shim.uninstall()
        assert connections()["other"].connection is dbapi, "uninstall keeps the connection"
        # Discarded with the thread's other thread-local state, the ThreadEnd's among them.
        SENTINEL.value = Sentinel()
        watch.append(weakref.ref(SENTINEL.value, lambda _: ended.set()))
        return dbapi

    dbapi = in_thread(uninstall_then_end)
    assert ended.wait(10), "the thread's local state was not discarded"
    time.sleep(0.2)  # the rest of that state is torn down around the same moment
    assert dbapi.execute("SELECT 3").fetchall() == [(3,)], "the moved connection was closed"


SENTINEL = threading.local()


def test_connection_created_receivers_of_the_original_class_fire_exactly_once(reinstall):
    from django.db.backends.signals import connection_created
    from django.db.backends.sqlite3 import base as sqlite_base

    calls = []

    def receiver(sender, connection, **kwargs):
        calls.append((sender, connection.alias))

    connlocal_shim.uninstall()
    original_class = sqlite_base.DatabaseWrapper
    connection_created.connect(receiver, sender=original_class, weak=False)
    try:
        connlocal_shim.install()
        handler = connections()

        def open_new_connection():
            wrapper = handler["other"]
            wrapper.cursor()
            return type(wrapper)

        opened_class = in_thread(open_new_connection)
        assert calls == [(opened_class, "other")]
    finally:
        connection_created.disconnect(receiver, sender=original_class)
        connection_created.disconnect(receiver, sender=sqlite_base.DatabaseWrapper)


def test_request_finished_closes_the_current_threads_connections_only():
    from django.core.signals import request_finished

    handler = connections()
    mine = handler["default"]
    support.query(mine, "SELECT 1")
    assert mine.connection is not None

    def finish_a_request():
        theirs = handler["default"]
        support.query(theirs, "SELECT 1")
        opened = theirs.connection is not None
        request_finished.send(sender=None)
        return opened, theirs.connection is None

    assert in_thread(finish_a_request) == (True, True)
    assert mine.connection is not None, "another thread's request must not close this one's"


REFUSAL = r"""
import logging, sys, warnings
import support
support.configure(installed_apps=())
support.start_django()
import django.db
from django.db import connections
from connlocal_shim.features import _find_base_wrapper

connections._connections = support.UnknownStorage()
records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger("connlocal_shim").addHandler(handler)
base = _find_base_wrapper()
before = (type(connections), dict(vars(connections)), type(django.db.connection),
          base.__bases__, dict(vars(base)))
import connlocal_shim
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    connlocal_shim.install()
after = (type(connections), dict(vars(connections)), type(django.db.connection),
         base.__bases__, dict(vars(base)))
assert not connlocal_shim.is_installed()
assert before[0] is after[0] and before[2] is after[2] and before[3] == after[3]
assert all(after[1][k] is v for k, v in before[1].items()) and after[1].keys() == before[1].keys()
assert all(after[4][k] is v for k, v in before[4].items()) and after[4].keys() == before[4].keys()
warned = [str(w.message) for w in caught if w.category is connlocal_shim.ConnlocalShimWarning]
logged = [r.getMessage() for r in records if r.levelno == logging.WARNING]
print("WARNED " + " | ".join(warned))
print("LOGGED " + " | ".join(logged))
print("REFUSED " + connlocal_shim.status()["refused"])
"""


def test_an_unknown_layout_is_refused_and_left_exactly_as_it_was():
    out, _, _ = support.run_python(REFUSAL)
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    for key in ("WARNED", "LOGGED", "REFUSED"):
        assert "neither a dict nor thread-local" in lines[key], out
    assert "left unpatched" in lines["WARNED"] and "left unpatched" in lines["LOGGED"]


NO_CONNECTIONS = r"""
import support
support.configure(installed_apps=())
import django.db
del django.db.connections  # the shape of Django 1.1 and earlier
import connlocal_shim
from django.core.exceptions import ImproperlyConfigured
try:
    connlocal_shim.install()
except ImproperlyConfigured as error:
    print("REFUSED " + str(error))
print("INSTALLED %s" % connlocal_shim.is_installed())
"""


def test_a_django_without_connections_is_refused_with_a_clear_error():
    out, _, _ = support.run_python(NO_CONNECTIONS)
    assert "REFUSED connlocal_shim needs django.db.connections" in out
    assert "Django 1.2 and later" in out
    assert "INSTALLED False" in out


def test_install_logs_one_info_line(reinstall):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("connlocal_shim")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        connlocal_shim.uninstall()
        del records[:]
        connlocal_shim.install()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert len(infos) == 1
    if BACKPORTED:
        assert "backported thread-local connections" in infos[0]
        assert len([r for r in records if r.levelno == logging.DEBUG]) == len(
            connlocal_shim.backport._installation.registry
        )
    else:
        assert "nothing to patch" in infos[0]


# -- install and uninstall while other threads query ----------------------------------------------


class _NothingFinder(object):
    """A finder of the kind tools add to sys.meta_path (pytest's, six's): finds nothing."""

    def find_module(self, fullname, path=None):
        return None

    def find_spec(self, fullname, path=None, target=None):
        return None


@requires_backport
def test_imports_in_other_threads_meanwhile_find_their_modules(reinstall, tmpdir):
    # install() adds a finder to sys.meta_path (identity.py: a green library's first import) and
    # uninstall() took it out. Python 2.7 walks sys.meta_path by index up to the length it read
    # first: an import under way in another thread then raised IndexError from __import__ (seen
    # loading a backend in the test below); Python 3 iterates the list and skips the finder
    # after the one removed.
    count = 400
    for number in range(count):
        tmpdir.join("connlocal_race_%d.py" % number).write("VALUE = %d\n" % number)
    sys.path.insert(0, str(tmpdir))
    sys.meta_path.append(_NothingFinder())  # two finders at least, as under pytest
    switch = (sys.getcheckinterval, sys.setcheckinterval, 1) if hasattr(
        sys, "setcheckinterval") and sys.version_info[0] == 2 else (
        sys.getswitchinterval, sys.setswitchinterval, 1e-6)
    previous = switch[0]()
    switch[1](switch[2])
    errors, imported = [], []
    done = threading.Event()

    def import_them():
        try:
            for number in range(count):
                module = __import__("connlocal_race_%d" % number)
                imported.append(module.VALUE)
        except Exception:
            errors.append(traceback.format_exc())
        finally:
            done.set()

    importer = threading.Thread(target=import_them)
    importer.daemon = True
    try:
        importer.start()
        while not done.is_set():
            connlocal_shim.uninstall()
            connlocal_shim.install()
        importer.join(60)
    finally:
        switch[1](previous)
        sys.path.remove(str(tmpdir))
        sys.meta_path[:] = [finder for finder in sys.meta_path
                            if not isinstance(finder, _NothingFinder)]
        for number in range(count):
            sys.modules.pop("connlocal_race_%d" % number, None)
    assert not errors, errors[0]
    assert imported == list(range(count))


@requires_backport
def test_install_and_uninstall_are_atomic_for_threads_querying_meanwhile(reinstall):
    # Every querying thread sees the old database layer or the new one, whole: 30 cycles of
    # uninstall() + install() against 4 threads that query through connections[alias],
    # django.db.connection and the captured references (README: "Limits worth knowing").
    import django.db
    import legacy_module

    handler = connections()
    stop = threading.Event()
    errors, counts = [], []
    started = threading.Semaphore(0)

    def query():
        done = 0
        started.release()
        try:
            while not stop.is_set():
                alias = ("default", "other", "thirdparty")[done % 3]
                handler[alias].cursor().execute("SELECT 1")
                django.db.connection.cursor().execute("SELECT 2")
                assert legacy_module.current_alias() == "default"
                done += 1
        except Exception:  # reported below, with where it happened
            errors.append(traceback.format_exc())
        counts.append(done)

    workers = [threading.Thread(target=query) for _ in range(4)]
    for worker in workers:
        worker.daemon = True
        worker.start()
    for _ in workers:
        assert started.acquire(True)
    before = [record.describe() for record in connlocal_shim.backport._installation.registry]
    try:
        for _ in range(30):
            connlocal_shim.uninstall()
            connlocal_shim.install()
            assert connlocal_shim.is_installed(), connlocal_shim.status()["refused"]
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    assert not errors, "\n".join(errors)
    assert len(counts) == 4 and min(counts) > 0
    records = list(connlocal_shim.backport._installation.registry)
    assert all(record.is_ours() for record in records), "a patch was left over or undone"
    targets = [(id(record.target), record.name) for record in records]
    assert len(set(targets)) == len(targets), "something was patched twice"
    assert connlocal_shim.status()["refused"] is None
    connlocal_shim.uninstall()
    connlocal_shim.install()  # quiet now: the patches of before the threads ran, and proxies
    # of the wrappers the threads made while uninstalled (django.db.connections has them now)
    now = [record.describe() for record in connlocal_shim.backport._installation.registry]
    extra = [d for d in now if d not in before]
    assert [d for d in before if d not in now] == []
    assert all(d.startswith("the ") and "wrapper captured before install" in d for d in extra)


class HeldInCursor(object):
    """A thread held inside a DatabaseWrapper method: its first query on ``alias`` stops in a
    connection_created receiver, which Django calls from ``_cursor()`` between opening the
    DB-API connection and making the cursor, until ``release()``."""

    def __init__(self, alias):
        from django.db.backends.signals import connection_created

        self.signal = connection_created
        self.inside = threading.Event()
        self.proceed = threading.Event()
        self.errors = []
        self.thread = threading.Thread(target=self.query, args=(alias,))
        self.thread.daemon = True

    def hold(self, sender, connection, **kwargs):
        if threading.current_thread() is self.thread:
            self.inside.set()
            self.proceed.wait(30)

    def query(self, alias):
        try:
            connections()[alias].cursor().execute("SELECT 1")
        except Exception:  # reported by the test, with where it happened
            self.errors.append(traceback.format_exc())

    def __enter__(self):
        self.signal.connect(self.hold, weak=False)
        self.thread.start()
        assert self.inside.wait(30), "the thread never reached _cursor()"
        return self

    def release(self):
        self.proceed.set()
        self.thread.join(30)
        assert not self.thread.is_alive()

    def __exit__(self, *exc_info):
        self.proceed.set()
        self.thread.join(30)
        self.signal.disconnect(self.hold)


@requires_backport
@pytest.mark.parametrize("change", ["uninstall", "install"])
def test_install_and_uninstall_wait_for_a_call_under_way_in_another_thread(reinstall, change):
    # A call in the middle of a wrapper method when the change came resumed under the other
    # layer: a super(DatabaseWrapper, self) that read the global after it raised TypeError,
    # a wrapper made half by each layer had no allow_thread_sharing, a connection just opened
    # was not found (about 1 run in 20 of the test above). The change now waits for it.
    if change == "install":
        connlocal_shim.uninstall()
    with HeldInCursor("other") as held:
        changer = support.ThreadResult(getattr(connlocal_shim, change))
        changer.thread.join(0.5)
        assert changer.thread.is_alive(), (
            "%s() was done while another thread was inside _cursor()" % change
        )
        held.release()
        changer.result(30)
    assert held.errors == []
    assert connlocal_shim.is_installed() is (change == "install")


@requires_backport
def test_a_call_under_way_for_too_long_is_named_in_a_warning_and_the_change_goes_ahead(
    reinstall, monkeypatch
):
    monkeypatch.setattr(connlocal_shim.backport, "CALLS_UNDER_WAY_TIMEOUT", 0.2)
    with HeldInCursor("other") as held:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            connlocal_shim.uninstall()
        assert not connlocal_shim.is_installed()
        messages = [str(w.message) for w in caught
                    if issubclass(w.category, connlocal_shim.ConnlocalShimWarning)]
        assert len(messages) == 1, messages
        assert "uninstall() went ahead after waiting 0.2 s" in messages[0]
        assert "%s is in " % held.thread.name in messages[0]
        assert "in _cursor" in messages[0]
        held.release()


@requires_backport
def test_install_uninstall_cycles_leave_no_objects_behind(reinstall):
    # Each cycle made proxy classes and a storage that stayed reachable for ever.
    import gc

    handler = connections()

    def cycle():
        connlocal_shim.uninstall()
        connlocal_shim.install()
        handler["default"].cursor().execute("SELECT 1")

    for _ in range(20):  # warm up: caches, first-use imports
        cycle()
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(200):
        cycle()
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown < 500, "200 install/uninstall cycles left %d objects behind" % grown


@requires_backport
def test_uninstall_leaves_nothing_holding_the_storage_it_retired(reinstall):
    # routing's fast path cached the storage of the last block entered: after uninstall it kept
    # that storage, and every wrapper of its threads, alive until the next routing block.
    import weakref

    from connlocal_shim import route_connections

    handler = connections()
    with route_connections(default="other"):
        handler["default"].cursor().execute("SELECT 1")
    storage = weakref.ref(handler.__dict__["_connections"])
    wrapper = weakref.ref(handler["memory"])
    connlocal_shim.uninstall()
    gc.collect()
    assert storage() is None, "the retired storage is still reachable: %s" % (
        [type(referrer).__name__ for referrer in gc.get_referrers(storage())],)
    assert wrapper() is None, "a wrapper of the retired storage is still alive"


@requires_backport
def test_disconnecting_a_receiver_with_the_original_class_stops_it(reinstall):
    from django.db.backends.signals import connection_created
    from django.db.backends.sqlite3 import base as sqlite_base

    calls = []

    def receiver(sender, connection, **kwargs):
        calls.append(connection.alias)

    connlocal_shim.uninstall()
    original_class = sqlite_base.DatabaseWrapper
    connlocal_shim.install()
    handler = connections()

    def open_new_connection():
        handler["other"].cursor()

    # Connected after install with a reference to the original class kept from before it.
    connection_created.connect(receiver, sender=original_class, weak=False)
    try:
        in_thread(open_new_connection)
        assert calls == ["other"]
    finally:
        connection_created.disconnect(receiver, sender=original_class)
    in_thread(open_new_connection)
    assert calls == ["other"], "a disconnected receiver kept firing"


INSTALL_FAILS = r"""
import logging, warnings
import support
support.configure(installed_apps=())
support.start_django()
import django.db
from django.db import connections
from django.db.backends import signals

class Refusing(type(signals.connection_created)):
    # A signal object someone made read-only: setting an attribute on it fails.
    def __setattr__(self, name, value):
        if name == "_live_receivers":
            raise TypeError("this signal is read-only")
        type(signals.connection_created).__setattr__(self, name, value)

signals.connection_created.__class__ = Refusing
records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger("connlocal_shim").addHandler(handler)
before = (type(connections), type(django.db.connection), dict(vars(connections)))
import connlocal_shim
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    connlocal_shim.install()
after = (type(connections), type(django.db.connection), dict(vars(connections)))
assert before[0] is after[0] and before[1] is after[1], "left half-patched"
assert all(after[2][k] is v for k, v in before[2].items())
print("INSTALLED %s" % connlocal_shim.is_installed())
print("REFUSED %s" % connlocal_shim.status()["refused"])
print("WARNED %s" % [str(w.message) for w in caught if w.category is connlocal_shim.ConnlocalShimWarning])
print("TRACEBACK %s" % any(r.exc_info and r.levelno == logging.ERROR for r in records))
"""


@requires_backport
def test_an_install_that_fails_is_undone_and_reported_not_silent():
    out, _, _ = support.run_python(INSTALL_FAILS)
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines["INSTALLED"] == "False"
    assert "install() failed" in lines["REFUSED"] and "this signal is read-only" in lines["REFUSED"]
    assert "this signal is read-only" in lines["WARNED"]
    assert lines["TRACEBACK"] == "True"


PAUSED_CALLS = r"""
import tempfile, threading
import support
support.configure(extra_databases={"late": support.write_late_backend(tempfile.mkdtemp())})
support.start_django()
import connlocal_shim
from connlocal_shim import route_connections, separate_connection
from django.db import connections
from pause_audit import PausedCallAudit

def query(alias):
    connections[alias].cursor().execute("SELECT 1")

# Threads that used connections and stay (their state is moved, kept or retired), while this one
# installs and uninstalls, with a backend first imported while installed and taken up again
# after reinstalling (the classes defined meanwhile), and per-task routing where Django has it.
used, done = threading.Event(), threading.Event()
def keep_using():
    for alias in ("default", "other"):
        query(alias)
    used.set()
    done.wait(60)
holder = threading.Thread(target=keep_using)
holder.start()
used.wait(60)
with PausedCallAudit() as audit:
    for _ in range(2):
        query("late")
        with route_connections(default="other"), separate_connection("other"):
            query("default")
        connlocal_shim.uninstall()
        query("late")
        connlocal_shim.install()
        thread = threading.Thread(target=query, args=("late",))
        thread.start(); thread.join()
done.set(); holder.join()
print("INSTALLED %s" % connlocal_shim.is_installed())
print("PAUSES %s" % (audit.pauses >= 4))
for found in audit.found:
    print("PAUSED AND %s" % found)
"""


def test_install_and_uninstall_never_give_the_gil_up_while_the_others_are_paused():
    # A lock taken in uninstall()'s paused block (Python 2 hands the GIL over on each acquire)
    # let a querying thread run between the handler's retirement and its class's restoration:
    # open_wrapper() then called the retired class again, until RecursionError (CI, once in
    # 30 cycles of test_install_and_uninstall_are_atomic_for_threads_querying_meanwhile).
    out, err, _ = support.run_python(PAUSED_CALLS)
    assert out.splitlines() == ["INSTALLED True", "PAUSES True"], err


HANDLER_CLASS_REPLACED_THEN_UNINSTALLED = r"""
import threading, warnings
import support
support.configure()
support.start_django()
import connlocal_shim
from django.db import connections

class Instrumented(type(connections)):  # a tool subclassing the handler's class after install
    pass

connections.__class__ = Instrumented
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    connlocal_shim.uninstall()
print("WARNED %s" % any("replaced by someone else" in str(w.message) for w in caught))

def first_use(alias):
    try:
        return support.query(connections[alias], "SELECT 3")
    except BaseException as error:
        return "%s: %s" % (type(error).__name__, str(error)[:80])

print("HERE %r" % (first_use("audit"),))
print("THREAD %r" % (support.in_thread(first_use, "other"),))
"""


@requires_backport
def test_a_handler_class_left_in_place_by_uninstall_opens_connections_as_djangos_own():
    # uninstall() leaves a subclass someone put over the handler's class (and warns); its
    # first use of an alias reached the retired handler's open_wrapper, which called the
    # handler's class (the same code again) until RecursionError.
    out, err, _ = support.run_python(HANDLER_CLASS_REPLACED_THEN_UNINSTALLED)
    assert out.splitlines() == ["WARNED True", "HERE [(3,)]", "THREAD [(3,)]"], err
