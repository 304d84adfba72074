"""Observe mode (observe.py, issue 25): nothing a query sees changes, every call Django 1.4
refuses is recorded at its call site (once, with a count), per-thread routing is refused, and
switching modes at runtime keeps every thread's connection and transaction."""
import logging
import os
import threading
import time

import pytest

import connlocal_shim
import sharing_cases
import support
from connlocal_shim import observe
from test_sharing_sites import THREAD_MESSAGE, marked_lines

FEATURES = support.original_features()
BACKPORTED = FEATURES.needs_backport
requires_backport = pytest.mark.skipif(
    not BACKPORTED,
    reason="handler already thread-local: this Django refuses cross-thread use itself, there "
    "is no process-wide connection to observe",
)
native_only = pytest.mark.skipif(
    BACKPORTED, reason="connections are thread-local only through the backport here: observe "
    "mode applies",
)
HERE = sharing_cases.__file__.rstrip("co")


def connections():
    from django.db import connections

    return connections


@pytest.fixture
def reinstall():
    """Leave the suite installed and in enforce mode, whatever the test did."""
    yield
    connlocal_shim.install()
    connlocal_shim.set_mode("enforce")


@pytest.fixture
def observing():
    """Observe mode for the test, with no sightings from before; enforce mode after it."""
    observe.forget_sightings()
    connlocal_shim.set_mode("observe")
    try:
        yield
    finally:
        connlocal_shim.set_mode("enforce")
        observe.forget_sightings()


def sites_in(filename):
    filename = os.path.abspath(filename)
    return sorted(s["line"] for s in connlocal_shim.status()["observed"]
                  if s["filename"] == filename)


def run_case(case, alias):
    """(lines that raised, their messages), or ("refused", the error) if the case itself
    raised ImproperlyConfigured in this thread."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        raised = case(alias)
    except ImproperlyConfigured as error:
        return "refused", str(error)
    return sorted(line for _, line in raised), [str(error) for error, _ in raised]


# -- the equivalence scripts --------------------------------------------------------------------

@requires_backport
@support.parametrize_over_databases(kinds=("sqlite", "postgres"))
@pytest.mark.parametrize("case", sharing_cases.CASES, ids=lambda case: case.__name__)
def test_observe_mode_records_exactly_the_sites_enforce_mode_refuses(case, aliases):
    alias = aliases["master"]
    if case is sharing_cases.another_threads_transaction_ended and not hasattr(
            connections()[alias], "commit"):
        pytest.skip("this Django's wrappers have no commit()/rollback(): transactions are "
                    "ended through django.db.transaction, which looks the thread's own up")
    # What the case does on this Django without the backport: observe mode must do the same
    # (shared_connection has nothing to share there: see below).
    if case is not sharing_cases.a_wrapper_shared_on_purpose:
        connlocal_shim.uninstall()
        try:
            bare = run_case(case, alias)
        finally:
            connlocal_shim.install()
    observe.forget_sightings()
    connlocal_shim.set_mode("observe")
    try:
        observed = run_case(case, alias)
        sites = sites_in(HERE)
    finally:
        connlocal_shim.set_mode("enforce")
        observe.forget_sightings()
    if case is sharing_cases.a_wrapper_shared_on_purpose:
        # shared_connection needs thread-local connections: refused, as the docs say.
        assert observed[0] == "refused" and "observe mode" in observed[1], observed
        assert sites == []
        return
    assert observed == bare, "observe mode changed what the case saw: %r, bare %r" % (
        observed, bare)
    assert all(THREAD_MESSAGE in message for message in observed[1])
    assert sites == marked_lines(case), (
        "observe mode recorded lines %s, Django 1.4 refuses at %s" % (sites, marked_lines(case)))


# -- what a query sees ----------------------------------------------------------------------

@requires_backport
@support.parametrize_over_databases(kinds=("sqlite", "postgres"))
def test_another_threads_wrapper_gives_the_caller_its_own_connection(aliases, observing):
    # Django 1.3: one wrapper object per alias, with per-thread state: a thread calling
    # cursor() on the wrapper another thread handed it uses its own connection.
    alias = aliases["master"]
    wrapper = connections()[alias]
    wrapper.cursor().execute("SELECT 1")
    mine = wrapper.connection

    def other():
        own = connections()[alias]
        wrapper.cursor().execute("SELECT 1")
        return own is not wrapper, own.connection, wrapper.connection

    separate, theirs, seen_in_mine = support.in_thread(other)
    assert separate
    assert theirs is not None and theirs is not mine
    assert seen_in_mine is mine, "the other thread's call touched this thread's wrapper"
    assert wrapper.connection is mine


@requires_backport
def test_each_call_site_is_recorded_once_with_its_count_and_logged_once(observing):
    wrapper = connections()["default"]
    logged = []
    handler = logging.Handler()
    handler.emit = logged.append
    logger = logging.getLogger("connlocal_shim")
    logger.addHandler(handler)

    def other():
        for _ in range(3):
            wrapper.cursor().execute("SELECT 1")  # one site, three calls
        wrapper.close()  # another site
        connections()["default"].cursor().execute("SELECT 1")  # its own: not recorded

    thread = threading.Thread(target=other, name="observed-worker")
    try:
        thread.start()
        thread.join(30)
    finally:
        logger.removeHandler(handler)
    here = os.path.abspath(__file__).rstrip("co")
    found = [s for s in connlocal_shim.status()["observed"] if s["filename"] == here]
    assert [(s["method"], s["count"], s["kind"]) for s in found] == [
        ("cursor", 3, "connection"), ("close", 1, "connection")]
    assert all(s["function"] == "other" and s["alias"] == "default" for s in found)
    assert found[0]["thread"] == "'observed-worker'"
    assert found[0]["owner_thread"] == repr(threading.current_thread().name)
    warnings = [r.getMessage() for r in logged if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "%s:%d" % (found[0]["filename"], found[0]["line"]) in warnings[0]
    assert "Django 1.4 (and enforce mode) raises DatabaseError there" in warnings[0]


@requires_backport
def test_a_thread_ending_frees_what_it_used_of_another_threads_wrapper(observing):
    import gc
    import weakref

    wrapper = connections()["default"]

    def other():
        wrapper.cursor().execute("SELECT 1")
        own = observe.own_twin(wrapper, connections())
        assert own is connections()["default"] and own.connection is not None
        return weakref.ref(own)

    gone = support.in_thread(other)
    gc.collect()
    assert gone() is None, "the ended thread's wrapper (and its connection) is still referenced"
    assert wrapper.connection is not None  # this thread's own, untouched


# -- refused while observing ----------------------------------------------------------------

@requires_backport
def test_routing_and_sharing_are_refused_and_change_nothing(observing):
    from django.core.exceptions import ImproperlyConfigured

    handler = connections()
    before = handler["default"]
    made_once = connlocal_shim.route_connections(default="other")
    for attempt in (
        lambda: made_once.__enter__(),
        lambda: connlocal_shim.route_connections(default="other").__enter__(),
        lambda: connlocal_shim.shared_connection("default").__enter__(),
        lambda: handler.__setitem__("default", handler["other"]),
        lambda: handler.__delitem__("default"),
    ):
        with pytest.raises(ImproperlyConfigured) as raised:
            attempt()
        assert "observe mode" in str(raised.value)
        assert handler["default"] is before
    assert not before.allow_thread_sharing


@requires_backport
def test_a_block_made_and_used_in_enforce_mode_is_refused_after_switching(reinstall):
    # The fast path keeps what it decided per handler state: observe mode must end that.
    from django.core.exceptions import ImproperlyConfigured

    block = connlocal_shim.route_connections(default="other")
    with block:
        pass
    connlocal_shim.set_mode("observe")
    try:
        with pytest.raises(ImproperlyConfigured):
            with block:
                pass
    finally:
        connlocal_shim.set_mode("enforce")
    with block as routed:
        assert routed["default"] is connections()["other"]


# -- switching modes --------------------------------------------------------------------------

@requires_backport
@support.parametrize_over_databases(kinds=("sqlite", "postgres"))
def test_switching_modes_keeps_every_threads_connection_and_transaction(aliases, reinstall):
    alias = aliases["master"]
    support.execute("CREATE TABLE observe_switch (n integer)", alias=alias)
    support.commit(alias)
    inserted, switched = threading.Event(), threading.Event()

    def request():
        wrapper = connections()[alias]
        support.execute("INSERT INTO observe_switch VALUES (7)", alias=alias)
        before = wrapper.connection
        inserted.set()
        assert switched.wait(30)
        own = connections()[alias]
        seen = support.execute("SELECT count(*) FROM observe_switch", alias=alias, fetch=True)
        result = (own is wrapper, own.connection is before, seen)
        support.commit(alias)
        return result

    try:
        worker = support.ThreadResult(request)
        assert inserted.wait(30)
        for mode in ("observe", "enforce", "observe", "enforce"):
            connlocal_shim.set_mode(mode)
            assert connlocal_shim.current_mode() == mode
        # Not committed yet: this thread's own connection does not see the row.
        assert support.execute("SELECT count(*) FROM observe_switch", alias=alias,
                               fetch=True) == [(0,)]
        support.commit(alias)
        switched.set()
        same_wrapper, same_connection, seen = worker.result()
        assert same_wrapper and same_connection
        assert seen == [(1,)], "the request lost its transaction"
        assert support.execute("SELECT count(*) FROM observe_switch", alias=alias,
                               fetch=True) == [(1,)]
    finally:
        switched.set()
        support.commit(alias)
        support.execute("DROP TABLE observe_switch", alias=alias)
        support.commit(alias)


@requires_backport
def test_switching_under_load_loses_no_query(reinstall):
    stop = threading.Event()
    errors, counts, progress = [], [], {}

    def query():
        done = 0
        own = None
        try:
            while not stop.is_set():
                wrapper = connections()["default"]
                own = own or wrapper
                assert wrapper is own
                wrapper.cursor().execute("SELECT 1")
                done += 1
                progress[threading.current_thread().name] = done
        except Exception as error:  # reported below
            errors.append(repr(error))
        counts.append(done)

    workers = [threading.Thread(target=query) for _ in range(4)]
    for worker in workers:
        worker.start()
    started = time.time()
    try:
        while len(progress) < 4:  # every worker has its connection before the first switch
            assert time.time() - started < 60, "workers did not start: %r" % progress
            time.sleep(0.01)
        before = dict(progress)
        # 100 switches, and on until every worker has queried 20 times through them (each
        # switch keeps the others paused for a moment: on a loaded machine a worker can miss
        # 100 of them).
        number = 0
        while number < 100 or min(progress[name] - before[name] for name in before) < 20:
            connlocal_shim.set_mode(("observe", "enforce")[number % 2])
            number += 1
            assert time.time() - started < 60, "workers made no progress: %r" % progress
    finally:
        if connlocal_shim.current_mode() != "enforce":
            connlocal_shim.set_mode("enforce")
        stop.set()
        for worker in workers:
            worker.join(60)
    assert not errors, errors
    assert len(counts) == 4 and min(counts) >= 20
    assert connlocal_shim.current_mode() == "enforce"


@requires_backport
@pytest.mark.parametrize("hold", ["route_connections", "shared_connection"])
def test_observe_mode_is_refused_while_a_thread_routes_or_shares(hold, reinstall):
    entered, leave = threading.Event(), threading.Event()
    block = {"route_connections": lambda: connlocal_shim.route_connections(default="other"),
             "shared_connection": lambda: connlocal_shim.shared_connection("default")}[hold]

    def holder():
        with block():
            entered.set()
            assert leave.wait(30)

    worker = support.ThreadResult(holder)
    try:
        assert entered.wait(30)
        records = len(connlocal_shim.status()["patches"])
        with pytest.raises(RuntimeError) as raised:
            connlocal_shim.set_mode("observe")
        assert "observe mode not started" in str(raised.value)
        assert ("route_connections blocks are open" in str(raised.value)) == (
            hold == "route_connections")
        assert connlocal_shim.current_mode() == "enforce"
        assert len(connlocal_shim.status()["patches"]) == records
    finally:
        leave.set()
        worker.result()
    connlocal_shim.set_mode("observe")
    connlocal_shim.set_mode("enforce")


def test_set_mode_rejects_an_unknown_mode_and_keeps_the_mode():
    before = connlocal_shim.current_mode()
    for bad in ("Observe", "", None, 1):
        with pytest.raises(ValueError) as raised:
            connlocal_shim.set_mode(bad)
        assert "set_mode() takes 'enforce' or 'observe', not %r" % (bad,) in str(raised.value)
    assert connlocal_shim.current_mode() == before


@native_only
def test_observe_mode_is_refused_where_django_refuses_sharing_itself():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured) as raised:
        connlocal_shim.set_mode("observe")
    assert "nothing to observe" in str(raised.value)
    connlocal_shim.set_mode("enforce")  # what it is: accepted
    assert connlocal_shim.current_mode() == "enforce"


@requires_backport
def test_uninstall_while_observing_reverts_everything(reinstall):
    before = [p["target"] for p in connlocal_shim.status()["patches"]]
    connlocal_shim.set_mode("observe")
    assert len(connlocal_shim.status()["patches"]) == len(before) + 1
    connlocal_shim.uninstall()
    assert connlocal_shim.status()["patches"] == []
    assert connlocal_shim.current_mode() == "enforce" and not observe.OBSERVING[0]
    connlocal_shim.install()
    # The same patches again; and proxies of the wrappers made while uninstalled, which
    # django.db.connections held when install() came (test_backport.py says why).
    after = [p["target"] for p in connlocal_shim.status()["patches"]]
    captured = "wrapper captured before install"
    assert [t for t in after if captured not in t] == [t for t in before if captured not in t]
    assert connlocal_shim.current_mode() == "enforce"


# -- the setting, as a site's process starts ----------------------------------------------------

STARTUP = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
import support
support.configure()
from django.conf import settings
settings.CONNLOCAL_SHIM = %r
settings.%s = %r
import connlocal_shim
try:
    support.start_django()
except Exception as error:
    print("RAISED %%s: %%s" %% (type(error).__name__, error))
status = connlocal_shim.status()
print("installed=%%s patches=%%d mode=%%s" %% (
    status["installed"], len(status["patches"]), connlocal_shim.current_mode()))
"""

def _middleware_setting():
    from django.conf import global_settings

    # MIDDLEWARE arrived in Django 1.10, beside MIDDLEWARE_CLASSES (removed in 2.0).
    return "MIDDLEWARE" if hasattr(global_settings, "MIDDLEWARE") else "MIDDLEWARE_CLASSES"


MIDDLEWARE_SETTING = _middleware_setting()


def start_with(config, middleware=()):
    out, err, _ = support.run_python(STARTUP % (config, MIDDLEWARE_SETTING, list(middleware)))
    return out


def test_an_unknown_mode_stops_startup_and_patches_nothing():
    out = start_with({"MODE": "watch"})
    assert ("RAISED ImproperlyConfigured: connlocal_shim: CONNLOCAL_SHIM['MODE'] must be one "
            "of 'enforce', 'observe', not 'watch'") in out
    assert "installed=False patches=0 mode=enforce" in out


@requires_backport
def test_the_setting_starts_the_site_in_observe_mode():
    out = start_with({"MODE": "observe"})
    assert "RAISED" not in out
    assert "installed=True" in out and "mode=observe" in out


@requires_backport
def test_observe_mode_with_the_pinning_middleware_stops_startup():
    out = start_with({"MODE": "observe", "ROUTE_WRITES": {"default": "other"}},
                     [observe.PINNING_MIDDLEWARE])
    assert "RAISED ImproperlyConfigured: connlocal_shim: CONNLOCAL_SHIM['MODE'] is 'observe'" \
        in out
    assert "installed=False patches=0 mode=enforce" in out


@native_only
def test_observe_mode_in_the_setting_is_a_warning_where_django_enforces():
    out = start_with({"MODE": "observe", "ROUTE_WRITES": {"default": "other"}},
                     [observe.PINNING_MIDDLEWARE])
    assert "RAISED" not in out
    assert "'observe' has no effect on Django" in out
    assert "installed=True patches=0 mode=enforce" in out


# -- what manage.py connlocal_status shows: every process of the site ----------------------------

SITE_PROCESS = """
import support
support.configure()
from django.conf import settings
settings.CONNLOCAL_SHIM = {"MODE": "observe", "OBSERVE_FILE": %r}
support.start_django()
import sharing_cases
for _ in range(%d):
    assert sharing_cases.a_wrapper_passed_to_a_thread("default") == []
sharing_cases.another_threads_connection_closed("default")
"""
STATUS = """
import sys
import support
support.configure()
from django.conf import settings
settings.CONNLOCAL_SHIM = {"OBSERVE_FILE": %r}
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "connlocal_status"] + sys.argv[1:] + %r)
"""


@requires_backport
def test_the_status_command_shows_every_processes_sightings_with_counts(tmpdir):
    import json

    path = str(tmpdir.join("observed.json"))
    support.run_python(SITE_PROCESS % (path, 2))
    support.run_python(SITE_PROCESS % (path, 3))
    passed = marked_lines(sharing_cases.a_wrapper_passed_to_a_thread)[0]
    closed = marked_lines(sharing_cases.another_threads_connection_closed)[0]
    out, _, _ = support.run_python(STATUS % (path, []))
    assert "Mode: enforce" in out  # the command's own process
    assert ("Cross-thread use seen (where Django 1.4 and enforce mode raise): 2 call sites, "
            "7 calls, from 2 processes (OBSERVE_FILE %s)" % path) in out
    assert "sharing_cases.py:%d in work(): 5 calls: thread 'Thread-" % passed in out
    assert "called cursor() on the 'default' connection of thread 'MainThread'" in out
    assert "sharing_cases.py:%d in work(): 2 calls: " % closed in out
    data = json.loads(support.run_python(STATUS % (path, ["--json"]))[0])
    assert [(s["line"], s["count"], s["method"]) for s in data["observed"]] == [
        (passed, 5, "cursor"), (closed, 2, "close")]
    assert data["observed_processes"] == 2


def test_a_bad_observe_file_stops_startup(tmpdir):
    out = start_with({"MODE": "observe", "OBSERVE_FILE": str(tmpdir.join("no", "such.json"))})
    assert "CONNLOCAL_SHIM['OBSERVE_FILE'] is %r, whose directory does not exist" % str(
        tmpdir.join("no", "such.json")) in out
    assert "installed=False patches=0" in out


# -- the system check (Django 1.7+) ---------------------------------------------------------------

def run_connlocal_checks(**values):
    from web import settings_changed

    try:
        from django.core.checks import run_checks
    except ImportError:
        pytest.skip("no system check framework here (django.core.checks.run_checks)")
    with settings_changed(**values):
        return [e.msg for e in run_checks() if e.id == "connlocal_shim.E001"]


def test_mode_alone_needs_no_middleware_settings_and_a_bad_mode_is_a_check_error():
    assert run_connlocal_checks(CONNLOCAL_SHIM={"MODE": "enforce"}) == []
    errors = run_connlocal_checks(CONNLOCAL_SHIM={"MODE": "watch"})
    assert errors == ["CONNLOCAL_SHIM['MODE'] must be one of 'enforce', 'observe', not 'watch'"]


@native_only
def test_observe_mode_beside_the_middleware_is_no_error_where_django_enforces():
    assert run_connlocal_checks(
        CONNLOCAL_SHIM={"MODE": "observe", "ROUTE_WRITES": {"default": "other"}},
        **{MIDDLEWARE_SETTING: [observe.PINNING_MIDDLEWARE]}) == []


@requires_backport
def test_the_middleware_refuses_to_load_in_observe_mode():
    from django.core.exceptions import ImproperlyConfigured
    from web import settings_changed

    from connlocal_shim.middleware import ConnectionPinningMiddleware

    with settings_changed(CONNLOCAL_SHIM={"MODE": "observe",
                                          "ROUTE_WRITES": {"default": "other"}}):
        with pytest.raises(ImproperlyConfigured) as raised:
            ConnectionPinningMiddleware(lambda request: None)
    assert observe.MIDDLEWARE_CONFLICT in str(raised.value)


IMPORTED_MODULE = """
import observe_import_worker as worker
from django.db import connections

wrapper = connections["default"]
worker.handed.append(wrapper)
worker.go.set()
worker.thread.join(5)  # the import lock is this thread's until the module is loaded
FINISHED_DURING_IMPORT = not worker.thread.is_alive()
"""


def cursor_imports_on_each_call():
    """Whether this Django's own BaseDatabaseWrapper.cursor() has an import statement (1.2's
    ``from django.conf import settings``): then every query takes Python 2's import lock."""
    from django.db import backends

    function = vars(backends.BaseDatabaseWrapper)["cursor"]
    function = getattr(function, "__wrapped__", function)
    return "django.conf" in function.__code__.co_names


@requires_backport
def test_an_observed_call_made_while_its_owner_imports_does_not_wait_for_the_import(
        tmpdir, observing, monkeypatch):
    # Python 2 takes one import lock for every import statement: the observed path must make
    # none, or a thread observed while the owner imports (and waits for it) hangs until the
    # owner gives up.
    import imp
    import sys

    if cursor_imports_on_each_call():
        pytest.skip("this Django's own cursor() imports django.conf on each call: any query "
                    "waits for another thread's import, with the shim or without")
    go, ready, handed, finished = threading.Event(), threading.Event(), [], []
    handler = connections()  # work() itself imports nothing

    def work():
        handler["default"].cursor().execute("SELECT 1")  # its own wrapper, opened
        ready.set()
        assert go.wait(30)
        handed[0].cursor().execute("SELECT 1")  # observed: the importing thread's wrapper
        finished.append(True)

    worker = imp.new_module("observe_import_worker")
    worker.go, worker.handed = go, handed
    worker.thread = threading.Thread(target=work)
    monkeypatch.setitem(sys.modules, "observe_import_worker", worker)
    tmpdir.join("observe_import_owner.py").write(IMPORTED_MODULE)
    monkeypatch.syspath_prepend(str(tmpdir))
    worker.thread.start()
    try:
        assert ready.wait(30)
        owner = __import__("observe_import_owner")
    finally:
        go.set()
        worker.thread.join(30)
        sys.modules.pop("observe_import_owner", None)
    assert finished
    assert owner.FINISHED_DURING_IMPORT, "the observed call waited for the import lock"
    assert [s["method"] for s in connlocal_shim.status()["observed"]
            if s["filename"] == os.path.abspath(__file__).rstrip("co")] == ["cursor"]
