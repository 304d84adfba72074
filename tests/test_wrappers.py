"""DatabaseWrapper classes without threading.local, Django 1.4's thread sharing, and the
references captured before install acting as the current thread's wrapper (wrappers.py)."""
import copy
import pickle
import sys
import threading
import types
import warnings

import pytest

import support
from support import ThreadResult, in_thread

FEATURES = support.original_features()
BACKPORTED = FEATURES.wrappers_without_local == "missing"
requires_backport = pytest.mark.skipif(
    not BACKPORTED,
    reason="wrappers already without threading.local: Django's own classes, nothing rebuilt",
)
THREAD_MESSAGE = (
    "DatabaseWrapper objects created in a thread can only be used in that same thread. "
    "The object with alias '%s' was created in thread id %s and this is thread id %s."
)


def connections():
    from django.db import connections

    return connections


def base_wrapper_class():
    from connlocal_shim.features import _find_base_wrapper

    return _find_base_wrapper()


def share(wrapper):
    """Allow other threads to use ``wrapper``: an attribute up to Django 2.1, a counter since."""
    if hasattr(wrapper, "inc_thread_sharing"):
        wrapper.inc_thread_sharing()
    else:
        wrapper.allow_thread_sharing = True


def unshare(wrapper):
    if hasattr(wrapper, "dec_thread_sharing"):
        wrapper.dec_thread_sharing()
    else:
        wrapper.allow_thread_sharing = False


# -- no threading.local -------------------------------------------------------------------------

def loaded_wrapper_classes():
    found, pending = [], [base_wrapper_class()]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.append(cls)
            pending.extend(type.__subclasses__(cls))
    return found


def test_no_wrapper_class_derives_from_threading_local():
    handler = connections()
    for alias in handler:
        assert threading.local not in type(handler[alias]).__mro__, alias
    classes = loaded_wrapper_classes()
    names = set(cls.__module__ for cls in classes)
    assert "thirdparty_backend.base" in names and "django.db.backends.sqlite3.base" in names
    for cls in classes:
        assert threading.local not in cls.__mro__, cls


@pytest.mark.parametrize("module_name,needs", support.BACKENDS)
def test_every_backends_wrapper_class_is_without_threading_local(module_name, needs):
    error = support.backend_errors.get(module_name)
    if error is not None:
        if support.REQUIRE_BACKENDS and BACKPORTED:
            pytest.fail("%s did not load (%s)" % (module_name, error))
        pytest.skip("cannot load %s here, it needs %s (%s)" % (module_name, needs, error))
    module = sys.modules[module_name]
    assert threading.local not in module.DatabaseWrapper.__mro__


def test_a_wrapper_has_one_state_for_all_threads():
    wrapper = connections()["default"]
    wrapper.shared_marker = object()
    try:
        assert in_thread(lambda: wrapper.shared_marker) is wrapper.shared_marker
        in_thread(setattr, wrapper, "shared_marker", "set elsewhere")
        assert wrapper.shared_marker == "set elsewhere"
    finally:
        del wrapper.shared_marker


def test_super_and_base_class_calls_work_in_rebuilt_classes():
    """thirdparty close() -> super() -> sqlite close() -> BaseDatabaseWrapper.close(self)."""
    wrapper = connections()["thirdparty"]
    wrapper.cursor().execute("SELECT 1")
    assert wrapper.connection is not None
    before = wrapper.closes
    wrapper.close()
    assert wrapper.closes == before + 1
    assert wrapper.connection is None


@requires_backport
def test_a_class_reached_through_an_old_reference_is_rebuilt_on_first_use():
    import connlocal_shim
    from django.db.backends.sqlite3 import base as sqlite_base

    old_sqlite = connlocal_shim.get_original(sqlite_base, "DatabaseWrapper")
    assert threading.local in old_sqlite.__mro__
    package = types.ModuleType("late_backend")
    module = types.ModuleType("late_backend.base")
    module.DatabaseWrapper = type("DatabaseWrapper", (old_sqlite,), {"__module__": module.__name__})
    package.base = module
    sys.modules["late_backend"], sys.modules["late_backend.base"] = package, module
    handler = connections()
    handler.databases["late"] = dict(handler.databases["memory"], ENGINE="late_backend")
    try:
        wrapper = handler["late"]
        assert threading.local not in type(wrapper).__mro__
        assert module.DatabaseWrapper is type(wrapper)
        assert support.query(wrapper, "SELECT 1") == [(1,)]
        assert in_thread(lambda: handler["late"]) is not wrapper
    finally:
        del handler["late"]
        del handler.databases["late"]
        del sys.modules["late_backend"], sys.modules["late_backend.base"]


# -- thread sharing ------------------------------------------------------------------------------

def guarded_methods():
    if FEATURES.thread_sharing == "missing":
        return FEATURES.targets.guarded_methods
    return ("cursor", "close", "commit", "rollback")


@pytest.mark.parametrize("name", guarded_methods())
def test_an_unshared_wrapper_refuses_other_threads(name):
    from django.db.utils import DatabaseError

    wrapper = connections()["default"]
    method = getattr(wrapper, name)
    args = ("s1_x1",) if name.endswith(("savepoint_commit", "savepoint_rollback")) else ()
    with pytest.raises(DatabaseError) as raised:
        in_thread(method, *args)
    message = str(raised.value)
    assert message.startswith(THREAD_MESSAGE.split(" The object")[0])
    assert "alias 'default'" in message
    assert "created in thread id %s " % support.get_ident() in message


def test_a_wrapper_defaults_to_unshared_and_its_owner_may_use_it():
    wrapper = connections()["default"]
    assert not wrapper.allow_thread_sharing
    wrapper.validate_thread_sharing()
    assert wrapper.cursor() is not None


def test_a_shared_wrapper_serves_an_in_memory_database_to_another_thread():
    # A wrapper of its own: a sqlite connection opened before install (as the suite's
    # uninstall/install cycles leave 'memory') keeps Python's same-thread check.
    memory = connections()["memory"]
    wrapper = type(memory)(memory.settings_dict, "memory")
    support.query(wrapper, "CREATE TABLE shared_rows (x INTEGER)")
    support.query(wrapper, "INSERT INTO shared_rows VALUES (7)")
    share(wrapper)
    try:
        assert wrapper.allow_thread_sharing
        assert in_thread(support.query, wrapper, "SELECT x FROM shared_rows") == [(7,)]

        def through_routing():
            connections()["default"] = wrapper
            return support.execute("SELECT COUNT(*) FROM shared_rows", fetch=True)

        assert [tuple(row) for row in in_thread(through_routing)] == [(1,)]
    finally:
        unshare(wrapper)
        wrapper.connection.close()


def test_sqlite_ignores_check_same_thread_true_with_a_warning():
    wrapper = connections()["memory"]
    settings_dict = dict(wrapper.settings_dict)
    settings_dict["OPTIONS"] = {"check_same_thread": True}
    other = type(wrapper)(settings_dict, "memory")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        other.cursor()
    try:
        assert any("check_same_thread" in str(w.message) for w in caught)
        share(other)
        assert in_thread(support.query, other, "SELECT 2") == [(2,)]
    finally:
        unshare(other)
        other.connection.close()


@pytest.mark.skipif(
    FEATURES.sharing_api == "counter",
    reason="thread sharing is a counter (inc_thread_sharing()), not an __init__ argument",
)
def test_allow_thread_sharing_can_be_given_when_creating_a_wrapper():
    wrapper = connections()["memory"]
    shared = type(wrapper)(wrapper.settings_dict, "memory", allow_thread_sharing=True)
    positional = type(wrapper)(wrapper.settings_dict, "memory", True)
    assert shared.allow_thread_sharing and positional.allow_thread_sharing
    assert in_thread(support.query, shared, "SELECT 3") == [(3,)]
    shared.connection.close()


# -- references captured before install ----------------------------------------------------------

CAPTURING_MODULES = ("django.db", "django.db.models", "django.db.models.fields",
                     "django.test.testcases", "legacy_module")


def captured_references():
    import django.test.testcases  # noqa: F401 (imported as a site's tests would)

    found = []
    for name in CAPTURING_MODULES:
        __import__(name)
        reference = getattr(sys.modules[name], "connection", None)
        if reference is not None:
            found.append((name, reference))
    return found


@pytest.mark.parametrize("module_name", CAPTURING_MODULES)
def test_captured_connection_acts_as_the_current_threads_default(module_name):
    references = dict(captured_references())
    if module_name not in references:
        pytest.skip("%s does not bind django.db.connection on this Django" % module_name)
    reference = references[module_name]
    handler = connections()
    marker = object()
    reference.per_thread_marker = marker
    try:
        assert handler["default"].per_thread_marker is marker

        def in_worker():
            seen = getattr(handler["default"], "per_thread_marker", None)
            handler["default"] = handler["other"]
            return seen, reference.alias, reference.settings_dict["NAME"]

        seen, alias, name = in_thread(in_worker)
        assert seen is None, "another thread must not see this thread's wrapper"
        assert alias == "other" and name == handler["other"].settings_dict["NAME"]
        assert reference.alias == "default"
    finally:
        del handler["default"].per_thread_marker


def test_legacy_module_follows_the_thread():
    import legacy_module

    def repointed():
        connections()["default"] = connections()["memory"]
        return legacy_module.current_alias()

    assert in_thread(repointed) == "memory"
    assert legacy_module.current_alias() == "default"


@requires_backport
def test_captured_reference_is_transparent():
    from django.db import connection

    handler = connections()
    wrapper = handler["default"]
    base = base_wrapper_class()
    assert isinstance(connection, type(wrapper)) and isinstance(connection, base)
    assert repr(connection) == repr(wrapper)
    assert connection == wrapper and not (connection != wrapper)
    assert "cursor" in dir(connection) and set(dir(connection)) == set(dir(wrapper))
    assert connection.__class__ is type(wrapper)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError) as raised:
            attempt(connection)
        assert "cannot be pickled or copied" in str(raised.value)


@requires_backport
def test_captured_reference_writes_reach_the_current_threads_wrapper():
    from django.db import connection

    def write():
        connection.written_here = True
        return connections()["default"].written_here

    assert in_thread(write) is True
    assert not hasattr(connections()["default"], "written_here")


# -- only DatabaseWrapper classes are rebuilt, and what they carry keeps working -------------------

@requires_backport
def test_a_class_rebuilt_on_first_use_leaves_threading_local_itself_alone():
    # Rebuilding walks the class's MRO: only DatabaseWrapper classes may be rebuilt, never
    # threading.local (rebuilding and rebinding it broke every threading.local in the process).
    import threading as threading_module

    try:
        import thread as thread_module
    except ImportError:
        import _thread as thread_module
    local_before, c_local_before = threading_module.local, thread_module._local
    test_a_class_reached_through_an_old_reference_is_rebuilt_on_first_use()
    assert threading_module.local is local_before
    assert thread_module._local is c_local_before
    value = threading_module.local()
    value.x = 1
    assert in_thread(lambda: hasattr(value, "x")) is False and value.x == 1


CARRIED_OVER = r"""
import threading, warnings
import support
support.configure()
import patched_before_install as patched       # a tool patching Django before install
support.start_django()                          # INSTALLED_APPS installs connlocal_shim
import connlocal_shim
from django.db import connections
assert connlocal_shim.is_installed(), connlocal_shim.status()["refused"]

def use(alias):
    wrapper = connections[alias]
    wrapper.cursor().execute("SELECT 1")        # the toolbar's closure: an old unbound method
    wrapper._rollback()                          # super(OldSqliteWrapper, self) in a closure
    wrapper._commit()                            # an unbound method as a default argument
    wrapper.counted_hook(True)                   # wrapt around an old unbound method
    answers = (wrapper.vendor_label(), wrapper.answer(), wrapper.closed_yet)
    wrapper.close()                              # a module global keeping an unbound method
    return answers + (wrapper.closed_yet,)

print("MAIN %r" % (use("default"),))
seen = []
thread = threading.Thread(target=lambda: seen.append(use("other")))
thread.start(); thread.join()
print("THREAD %r" % (seen[0],))
print("CALLS %s" % sorted(patched.CALLS.items()))

# A patch applied after install lands on the rebuilt class and keeps working ...
from django.db.backends import BaseDatabaseWrapper
after = []
original_cursor = BaseDatabaseWrapper.cursor
def cursor_after_install(self):
    after.append(self.alias)
    return original_cursor(self)
BaseDatabaseWrapper.cursor = cursor_after_install
connections["default"].cursor().execute("SELECT 1")
print("AFTER %r" % after)
# ... and uninstall says it goes with the rebuilt class, naming it.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    connlocal_shim.uninstall()
print("UNINSTALL %r" % [str(w.message) for w in caught])
connections["default"].cursor().execute("SELECT 1")
print("UNINSTALLED OK")
"""


@requires_backport
def test_what_tools_patched_onto_wrapper_classes_before_install_keeps_working():
    out, _, _ = support.run_python(CARRIED_OVER)
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines["MAIN"] == "('DatabaseWrapper', 42, False, True)"
    assert lines["THREAD"] == lines["MAIN"]
    assert lines["CALLS"] == (
        "[('close', 2), ('cursor', 2), ('default', 2), ('super', 2), ('wrapt', 2)]"
    )
    assert lines["AFTER"] == "['default']"
    assert "BaseDatabaseWrapper.cursor" in lines["UNINSTALL"]
    assert "after install" in lines["UNINSTALL"]
    assert "UNINSTALLED OK" in out


OLD_STYLE_MIXIN = r"""
import threading, warnings
import support
import connlocal_shim.exceptions
warnings.simplefilter("error", connlocal_shim.exceptions.ConnlocalShimWarning)  # a refusal fails
from django.conf import settings
support.configure()
settings.DATABASES["oldstyle"] = dict(settings.DATABASES["default"], ENGINE="oldstyle_backend")
from django.db import connections
connections["oldstyle"]                          # loaded before install, as a site's backend
support.start_django()
import connlocal_shim
status = connlocal_shim.status()
print("INSTALLED %s" % status["installed"])
print("REBUILT %s" % ("oldstyle_backend.base.DatabaseWrapper" in status["rebuilt_classes"]))
wrapper = connections["oldstyle"]
wrapper.cursor().execute("SELECT 1")
print("MIXIN %s" % wrapper.cursors_opened)
print("LOCAL %s" % (threading.local in type(wrapper).__mro__))
"""


@requires_backport
@pytest.mark.skipif(sys.version_info[0] > 2, reason="old-style classes exist on Python 2 only")
def test_a_backend_with_an_old_style_mixin_is_rebuilt():
    out, _, _ = support.run_python(OLD_STYLE_MIXIN)
    assert out.split() == ["INSTALLED", "True", "REBUILT", "True", "MIXIN", "1", "LOCAL", "False"]


SQLITE_LOADED_AFTER_INSTALL = r"""
import sys, threading
import support
from django.conf import settings
support.configure()
databases = settings.DATABASES
for alias in list(databases):
    if alias != "default":
        del databases[alias]
databases["default"] = {"ENGINE": "django.db.backends.dummy"}  # default on another backend
databases["file"] = support.database_settings(support.tempfile.mkdtemp())["other"]
databases["mem"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
support.start_django()
import connlocal_shim
assert connlocal_shim.is_installed()
print("SQLITE_BEFORE %s" % ("django.db.backends.sqlite3.base" in sys.modules))
from django.db import connections
from connlocal_shim import route_connections, shared_connection
for alias in ("mem", "file"):
    with shared_connection(alias) as wrapper:
        wrapper.cursor().execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        wrapper.cursor().execute("INSERT INTO t VALUES (5)")
        seen = []
        def query():
            with route_connections(default=wrapper):
                cursor = connections["default"].cursor()
                cursor.execute("SELECT x FROM t")
                seen.append(cursor.fetchall())
        thread = threading.Thread(target=query); thread.start(); thread.join()
        print("%s %r" % (alias.upper(), seen))
"""


@requires_backport
def test_a_sqlite_backend_loaded_after_install_opens_shareable_connections():
    out, err, _ = support.run_python(SQLITE_LOADED_AFTER_INSTALL)
    lines = out.splitlines()
    assert lines[0] == "SQLITE_BEFORE False"
    assert lines[1:] == ["MEM [[(5,)]]", "FILE [[(5,)]]"], err


BACKEND_IMPORTED_WHILE_INSTALLED = r"""
import os, sys, tempfile, threading
import support
where = tempfile.mkdtemp()
support.configure(extra_databases={"late": support.write_late_backend(where)})
support.start_django()
import connlocal_shim
from django.db import connections
print("BEFORE %s %s" % (connlocal_shim.is_installed(), "late_backend.base" in sys.modules))
connections["late"].cursor().execute("CREATE TABLE t (x INTEGER)")
connections["late"].cursor().execute("INSERT INTO t VALUES (7)")
support.commit("late")

def use(results, key):
    wrapper = connections["late"]
    cursor = wrapper.cursor()
    cursor.execute("SELECT x FROM t")
    results[key] = (wrapper, cursor.fetchall(), wrapper.connection)

def in_two_threads():
    results = {}
    use(results, "mine")
    thread = threading.Thread(target=use, args=(results, "theirs"))
    thread.start(); thread.join()
    return results["mine"], results["theirs"]

connlocal_shim.uninstall()
import late_backend.base
mine, theirs = in_two_threads()
print("UNINSTALLED rows %r %r" % (mine[1], theirs[1]))
# Unpatched Django 1.3: one wrapper object for every thread, each with its own DB-API connection.
print("UNINSTALLED shared %s, own connections %s, thread-local class %s" % (
    mine[0] is theirs[0], mine[2] is not theirs[2],
    issubclass(late_backend.base.DatabaseWrapper, threading.local)))
connlocal_shim.install()
mine, theirs = in_two_threads()
print("INSTALLED rows %r %r" % (mine[1], theirs[1]))
print("INSTALLED own wrappers %s, thread-local class %s, sharing API %s" % (
    mine[0] is not theirs[0], isinstance(mine[0], threading.local),
    hasattr(mine[0], "allow_thread_sharing")))
"""


@requires_backport
def test_a_backend_imported_while_installed_is_thread_local_again_after_uninstall():
    out, err, _ = support.run_python(BACKEND_IMPORTED_WHILE_INSTALLED)
    assert out.splitlines() == [
        "BEFORE True False",
        "UNINSTALLED rows [(7,)] [(7,)]",
        "UNINSTALLED shared True, own connections True, thread-local class True",
        "INSTALLED rows [(7,)] [(7,)]",
        "INSTALLED own wrappers True, thread-local class False, sharing API True",
    ], err


@requires_backport
def test_a_wrapper_made_while_installed_can_be_used_and_closed_after_uninstall():
    import connlocal_shim

    handler = connections()
    made = {}
    opened, release = threading.Event(), threading.Event()

    def open_and_wait():
        for alias in ("other", "thirdparty"):
            made[alias] = handler[alias]
            made[alias].cursor().execute("SELECT 1")
        opened.set()
        release.wait(30)

    worker = ThreadResult(open_and_wait)
    assert opened.wait(30)
    connlocal_shim.uninstall()
    try:
        release.set()
        worker.result()
        for alias, wrapper in sorted(made.items()):
            share(wrapper)  # its thread has ended: this one takes it over
            assert support.query(wrapper, "SELECT 4") == [(4,)]
            wrapper.close()  # sqlite's close() calls BaseDatabaseWrapper.close(self), super()
            assert wrapper.connection is None, alias
        assert made["thirdparty"].closes == 1
    finally:
        connlocal_shim.install()
