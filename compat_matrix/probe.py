"""The behavioural probe of the compatibility matrix, run inside one tox env::

    .tox/py27-django13/bin/python compat_matrix/probe.py --output record.json

It configures Django in-process (sqlite files in a temporary directory and one ``:memory:``
database, ``connlocal_shim`` in INSTALLED_APPS), starts it as a site starts, and checks every
feature of compat_matrix/columns.py with real threads (and asyncio tasks where Django has
them), then writes one JSON record. Python 2.7 and 3.6-3.13 from one source.

Run as a file, it has this directory (not the checkout) first on sys.path: it imports the
connlocal_shim installed in the env, and says where that was found.
"""
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import columns

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 30  # seconds a probe thread may take before its check fails

try:  # Python 3.5+: async def parses
    import probe_async
except SyntaxError:
    probe_async = None


class CheckFailed(Exception):
    """A behaviour the probe checked is not what it must be."""


def expect(condition, message, *args):
    if not condition:
        raise CheckFailed(message % args if args else message)


# -- Django in this process ------------------------------------------------------------------

def configure(directory):
    from django.conf import settings

    def sqlite(name):
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(directory, name),
            "OPTIONS": {"timeout": 30},
        }

    settings.configure(
        DEBUG=False,
        DATABASES={
            "default": sqlite("default.sqlite3"),
            "other": sqlite("other.sqlite3"),
            "memory": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        },
        INSTALLED_APPS=["connlocal_shim"],
        SECRET_KEY="connlocal-shim-compat-matrix",
        USE_TZ=False,
        ALLOWED_HOSTS=["testserver"],
        MIDDLEWARE_CLASSES=(),
        ROOT_URLCONF="probe_urls",
    )


def start_django():
    """What a site's startup does with INSTALLED_APPS: django.setup() on Django 1.7+, the app
    cache loading every app's models module before (which installs the backport)."""
    import django

    if hasattr(django, "setup"):
        django.setup()
    else:
        from django.db.models.loading import get_apps

        get_apps()


def connections():
    from django.db import connections

    return connections


class ThreadResult(object):
    """Runs ``func`` in a real thread; ``result()`` joins it and re-raises what it raised."""

    def __init__(self, func, *args):
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(func, args))
        self.thread.daemon = True
        self.thread.start()

    def _run(self, func, args):
        try:
            self.value = func(*args)
        except BaseException as error:  # handed to the probe's thread by result()
            self.error = error

    def result(self):
        self.thread.join(TIMEOUT)
        expect(not self.thread.is_alive(), "a probe thread did not finish in %ss", TIMEOUT)
        if self.error is not None:
            raise self.error
        return self.value


def in_thread(func, *args):
    return ThreadResult(func, *args).result()


def wait(event, what):
    expect(event.wait(TIMEOUT) is not False and event.is_set(),
           "waited %ss for %s", TIMEOUT, what)


def query(wrapper, sql, params=()):
    cursor = wrapper.cursor()
    cursor.execute(sql, params)
    return [tuple(row) for row in cursor.fetchall()]


def database_file(wrapper):
    """The file of the sqlite database a cursor of ``wrapper`` really opens."""
    for row in query(wrapper, "PRAGMA database_list"):
        if row[1] == "main":
            return os.path.basename(row[2]) or ":memory:"
    return None


def commit(alias):
    """Commit what the thread wrote through ``alias``: before Django 1.6 writes outside a managed
    transaction are committed by commit_unless_managed(); since 1.6 connections autocommit."""
    from django.db import transaction

    wrapper = connections()[alias]
    if getattr(wrapper, "get_autocommit", None) is not None and wrapper.get_autocommit():
        return
    transaction.commit_unless_managed(using=alias)


class OuterTransaction(object):
    """A transaction on ``alias`` (as a view opens one), rolled back at the end."""

    def __init__(self, alias):
        self.alias = alias
        self.atomic = None

    def __enter__(self):
        from django.db import transaction

        if hasattr(transaction, "atomic"):  # Django 1.6+
            self.atomic = transaction.atomic(using=self.alias)
            self.atomic.__enter__()
        else:  # Django 1.2-1.5
            transaction.enter_transaction_management(using=self.alias)
            transaction.managed(True, using=self.alias)
        return self

    def __exit__(self, *exc_info):
        from django.db import transaction

        if self.atomic is not None:
            transaction.set_rollback(True, using=self.alias)
            self.atomic.__exit__(None, None, None)
        else:
            transaction.rollback(using=self.alias)
            transaction.leave_transaction_management(using=self.alias)
        return False


# -- the checks ----------------------------------------------------------------------------------
# Each returns what it verified (a sentence) or raises CheckFailed / what Django raised.

def check_thread_local_handler(probe):
    handler = connections()
    main = handler["default"]
    expect(handler["default"] is main, "the main thread got two wrappers for 'default'")
    both_in, release = threading.Event(), threading.Event()
    arrived = []
    lock = threading.Lock()

    def worker():
        first = handler["default"]
        with lock:
            arrived.append(first)
            if len(arrived) == 2:
                both_in.set()
        release.wait(TIMEOUT)
        return first, handler["default"]

    threads = [ThreadResult(worker), ThreadResult(worker)]
    wait(both_in, "two threads to take their wrappers")
    release.set()
    seen = [thread.result() for thread in threads]
    for first, again in seen:
        expect(first is again, "a thread got two different wrappers for 'default'")
        expect(first.alias == "default", "a thread's wrapper has alias %r", first.alias)
    objects = set(id(w) for w in [main, seen[0][0], seen[1][0]])
    expect(len(objects) == 3, "3 threads share %d wrapper(s) for 'default'", len(objects))
    return "3 threads alive at once got 3 different 'default' wrappers, each always its own"


def check_handler_setitem(probe):
    handler = connections()
    own = handler["default"]
    repointed, release = threading.Event(), threading.Event()

    def repointing():
        handler["default"] = handler["other"]
        seen = handler["default"].alias
        repointed.set()
        release.wait(TIMEOUT)
        return seen, handler["default"].alias

    def bystander():
        wait(repointed, "the other thread to re-point 'default'")
        try:
            return handler["default"].alias
        finally:
            release.set()

    first, second = ThreadResult(repointing), ThreadResult(bystander)
    seen_there, seen_later = first.result()
    seen_bystander = second.result()
    expect((seen_there, seen_later) == ("other", "other"),
           "the re-pointing thread saw %r then %r", seen_there, seen_later)
    expect(seen_bystander == "default", "another thread saw %r", seen_bystander)
    expect(handler["default"] is own, "the main thread's 'default' changed")
    done = "re-pointed in one thread only, while another ran"
    if probe.features.get("handler_delitem") in (columns.NATIVE, "missing"):
        def forget():
            mine = handler["default"]
            del handler["default"]
            return handler["default"] is not mine

        expect(in_thread(forget), "del connections['default'] kept the thread's wrapper")
        expect(handler["default"] is own, "del in another thread removed the main thread's")
        done += "; del connections[alias] forgets the thread's own wrapper only"
    return done


def check_wrappers_without_local(probe):
    handler = connections()
    wrapper = handler["default"]
    with_local = [cls.__name__ for cls in type(wrapper).__mro__ if cls is threading.local]
    expect(not with_local, "%s still derives from threading.local", type(wrapper).__name__)
    marker = object()
    wrapper._connlocal_probe_marker = marker
    try:
        seen = in_thread(lambda: getattr(wrapper, "_connlocal_probe_marker", None))
    finally:
        del wrapper._connlocal_probe_marker
    expect(seen is marker, "an attribute set on the wrapper is not seen from another thread")
    return "%s has no threading.local base; another thread sees its attributes" % (
        type(wrapper).__name__)


def _share(wrapper):
    from connlocal_shim import routing

    return routing.share(wrapper)


def _unshare(wrapper, previous):
    from connlocal_shim import routing

    routing.unshare(wrapper, previous)


def check_thread_sharing(probe):
    from django.db import DatabaseError

    wrapper = connections()["memory"]
    query(wrapper, "CREATE TABLE sharing_probe (x INTEGER)")
    query(wrapper, "INSERT INTO sharing_probe VALUES (7)")

    def use():
        return query(wrapper, "SELECT x FROM sharing_probe")

    try:
        in_thread(use)
    except DatabaseError:
        pass
    else:
        raise CheckFailed("another thread used the unshared wrapper without DatabaseError")
    previous = _share(wrapper)
    try:
        rows = in_thread(use)
    finally:
        _unshare(wrapper, previous)
    expect(rows == [(7,)], "the shared wrapper gave another thread %r", rows)
    api = "inc_thread_sharing()" if hasattr(wrapper, "inc_thread_sharing") else \
        "allow_thread_sharing"
    return "unshared: DatabaseError in another thread; shared (%s): it reads the table" % api


def check_connection_proxy(probe):
    handler = connections()
    captured = probe.captured_connection
    import django.db

    repointed, release = threading.Event(), threading.Event()

    def repointing():
        handler["default"] = handler["other"]
        seen = (captured.alias, django.db.connection.alias, database_file(captured))
        repointed.set()
        release.wait(TIMEOUT)
        return seen

    def bystander():
        wait(repointed, "the other thread to re-point 'default'")
        try:
            return captured.alias, django.db.connection.alias, database_file(captured)
        finally:
            release.set()

    first, second = ThreadResult(repointing), ThreadResult(bystander)
    there, here = first.result(), second.result()
    expect(there == ("other", "other", "other.sqlite3"),
           "in the re-pointing thread the captured connection is %r", there)
    expect(here == ("default", "default", "default.sqlite3"),
           "in another thread the captured connection is %r", here)
    expect(captured.alias == "default", "the main thread's captured connection moved")
    return ("a reference captured before install and django.db.connection follow each thread's "
            "'default', down to the sqlite file their cursors open")


def check_route_connections(probe):
    from connlocal_shim import route_connections
    import django.db

    handler = connections()
    entered, release = threading.Event(), threading.Event()

    def routed():
        with route_connections(default="other"):
            seen = (handler["default"].alias, django.db.connection.alias,
                    database_file(handler["default"]))
            entered.set()
            release.wait(TIMEOUT)
        return seen, handler["default"].alias

    def bystander():
        wait(entered, "the routed thread to enter its block")
        try:
            return handler["default"].alias, django.db.connection.alias
        finally:
            release.set()

    first, second = ThreadResult(routed), ThreadResult(bystander)
    inside, after = first.result()
    plain = second.result()
    expect(inside == ("other", "other", "other.sqlite3"), "inside the block: %r", inside)
    expect(after == "default", "after the block 'default' is %r", after)
    expect(plain == ("default", "default"), "an unrouted thread meanwhile saw %r", plain)

    @route_connections(default="other")
    def decorated(answer):
        return handler["default"].alias, answer

    expect(decorated(42) == ("other", 42), "as a decorator: %r", decorated(42))
    expect(handler["default"].alias == "default", "the decorator left 'default' re-pointed")

    class Raised(Exception):
        pass

    try:
        with route_connections(default="other"):
            raise Raised()
    except Raised:
        pass
    expect(handler["default"].alias == "default", "an exception left 'default' re-pointed")
    with route_connections(default="other", other="default"):
        swapped = (handler["default"].alias, handler["other"].alias)
    expect(swapped == ("other", "default"), "swapping gave %r", swapped)
    return ("one thread routed while another ran unrouted; decorator; restored after an "
            "exception; swap")


def check_separate_connection(probe):
    from connlocal_shim import route_connections, separate_connection

    handler = connections()
    own = handler["default"]
    for table in ("audit_probe", "orders_probe"):
        own.cursor().execute("CREATE TABLE IF NOT EXISTS %s (what VARCHAR(20))" % table)
        own.cursor().execute("DELETE FROM %s" % table)
    commit("default")
    with OuterTransaction("default"):
        with route_connections(default=separate_connection("default")) as routed:
            separate = routed["default"]
            expect(separate is not own and handler["default"] is separate,
                   "the block is not on a separate connection")
            handler["default"].cursor().execute(
                "INSERT INTO audit_probe VALUES (%s)", ["refund asked"])
            commit("default")
        expect(separate.connection is None, "the separate connection is open after its block")
        expect(handler["default"] is own, "'default' was not restored")
        own.cursor().execute("INSERT INTO orders_probe VALUES (%s)", ["refund"])
    with separate_connection("default") as fresh:
        audit = query(fresh, "SELECT what FROM audit_probe")
        orders = query(fresh, "SELECT what FROM orders_probe")
    expect(audit == [("refund asked",)], "the audit row is %r", audit)
    expect(orders == [], "the rolled-back transaction left %r", orders)
    return ("the audit row committed on its own connection, the surrounding transaction rolled "
            "back; closed on exit")


def check_shared_connection(probe):
    from django.db import DatabaseError

    from connlocal_shim import route_connections, shared_connection

    handler = connections()
    memory = handler["memory"]
    query(memory, "CREATE TABLE served_probe (x INTEGER)")
    query(memory, "INSERT INTO served_probe VALUES (11)")

    def serve(wrapper):
        with route_connections(default=wrapper):
            return query(connections()["default"], "SELECT x FROM served_probe")

    with shared_connection("memory") as shared:
        expect(shared is memory, "shared_connection yielded another wrapper")
        rows = in_thread(serve, shared)
    expect(rows == [(11,)], "the serving thread read %r", rows)
    try:
        in_thread(serve, shared)
    except DatabaseError:
        pass
    else:
        raise CheckFailed("after the block another thread still used the wrapper")
    return "another thread read the in-memory table through it; unshared again after the block"


def check_middleware(probe):
    from django.conf import settings
    from django.test.client import Client

    import probe_urls

    handler = connections()
    path = "connlocal_shim.middleware.ConnectionPinningMiddleware"
    from django.conf import global_settings

    name = "MIDDLEWARE" if hasattr(global_settings, "MIDDLEWARE") else "MIDDLEWARE_CLASSES"
    saved = [(key, getattr(settings, key, None)) for key in (name, "CONNLOCAL_SHIM")]
    setattr(settings, name, [path])
    settings.CONNLOCAL_SHIM = {"ROUTE_WRITES": {"default": "other"}, "STICKY_SECONDS": 30}
    try:
        writer = Client()
        posted = writer.post("/alias/").content.decode("ascii")
        expect(posted == "other,other", "a POST ran with default,connection = %s", posted)
        expect(handler["default"].alias == "default", "the POST left routing in the thread")
        sticky = writer.get("/alias/").content.decode("ascii")
        expect(sticky == "other,other", "the writer's next GET ran with %s", sticky)
        plain = Client().get("/alias/").content.decode("ascii")
        expect(plain == "default,default", "another client's GET ran with %s", plain)

        # A POST held inside its view in one thread, a GET served meanwhile in another.
        probe_urls.inside.clear()
        probe_urls.release.clear()
        held = ThreadResult(lambda: Client().post("/hold/").content.decode("ascii"))
        wait(probe_urls.inside, "the POST to reach its view")
        try:
            meanwhile = Client().get("/alias/").content.decode("ascii")
        finally:
            probe_urls.release.set()
        expect(held.result() == "other,other", "the held POST ran with %s", held.result())
        expect(meanwhile == "default,default", "a concurrent GET ran with %s", meanwhile)
    finally:
        for key, value in saved:
            setattr(settings, key, value)
    expect(handler["default"].alias == "default", "requests left routing in the thread")
    return ("POST routed, sticky GET routed, other client not, concurrent GET in another thread "
            "not; %s" % name)


def check_async_safety(probe):
    from connlocal_shim import route_connections

    other, memory, plain = probe_async.run(probe_async.concurrent_tasks(route_connections))
    expect(other == (("other", "other"), ("other", "other")), "the 'other' task saw %r", other)
    expect(memory == (("memory", "memory"), ("memory", "memory")),
           "the 'memory' task saw %r", memory)
    expect(plain == ("default", "default"), "the unrouted task saw %r", plain)
    expect(connections()["default"].alias == "default", "the tasks left routing behind")
    return "3 concurrent tasks (2 routed differently, 1 not) each saw their own routing"


CHECKS = {
    "thread_local_handler": check_thread_local_handler,
    "handler_setitem": check_handler_setitem,
    "wrappers_without_local": check_wrappers_without_local,
    "thread_sharing": check_thread_sharing,
    "connection_proxy": check_connection_proxy,
    "route_connections": check_route_connections,
    "separate_connection": check_separate_connection,
    "shared_connection": check_shared_connection,
    "middleware": check_middleware,
    "async_safety": check_async_safety,
}


# -- what each feature is on this Django ---------------------------------------------------------

class Probe(object):
    def __init__(self, status):
        self.status = status
        self.features = status["features"]
        self.captured_connection = None

    def piece_state(self, piece):
        """native, or backported where install() added it, or missing where it refused."""
        state = self.features.get(piece)
        if state == "missing":
            return columns.BACKPORTED if self.status["installed"] else columns.MISSING
        if state == "unavailable":
            return columns.UNAVAILABLE
        return columns.NATIVE if state == "native" else columns.MISSING

    def state(self, key):
        if key in ("thread_local_handler", "handler_setitem", "wrappers_without_local",
                   "thread_sharing", "connection_proxy"):
            return self.piece_state(key), None
        if key == "shared_connection":
            return self.piece_state("thread_sharing"), None
        if key == "async_safety":
            if not self.features.get("async_local"):
                return columns.UNAVAILABLE, (
                    "Django keeps connections in a threading.local here (asgiref's Local came "
                    "with Django 3.0): there are no async tasks to keep apart")
            if probe_async is None:
                return columns.UNAVAILABLE, "no async def on this Python"
            from connlocal_shim import context

            if context.ROUTES is None:
                return columns.UNAVAILABLE, "no contextvars on this Python (3.7+)"
            return columns.NATIVE, None
        # route_connections, separate_connection, middleware stand on the thread-local handler.
        return self.piece_state("thread_local_handler"), None

    def run(self, key):
        state, why = self.state(key)
        started = time.time()
        if state == columns.UNAVAILABLE:
            return {"state": state, "result": columns.NOT_APPLICABLE, "detail": why or
                    "Django %s has no such feature" % self.features.get("django_version")}
        try:
            detail = CHECKS[key](self)
            result = columns.PASSED
        except CheckFailed as failure:
            result, detail = columns.FAILED, str(failure)
        except Exception as error:  # reported in the record: the cell says FAILED and why
            result = columns.FAILED
            detail = "%s: %s (%s)" % (type(error).__name__, error, last_frame())
        if state == columns.MISSING and self.status.get("refused"):
            detail += "; install refused: %s" % self.status["refused"]
        return {"state": state, "result": result, "detail": detail,
                "seconds": round(time.time() - started, 3)}


def last_frame():
    frames = traceback.extract_tb(sys.exc_info()[2])
    if not frames:
        return "no traceback"
    filename, line, function = frames[-1][0], frames[-1][1], frames[-1][2]
    return "%s:%s in %s" % (os.path.basename(filename), line, function)


# -- diagnostics: the status command and the system checks, run as a site runs them ---------------

def run_site(args):
    """Run compat_matrix/demo_site/manage.py ARGS with this Python; (exit code, output)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    process = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "demo_site", "manage.py")] + list(args),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        cwd=os.path.join(HERE, "demo_site"),
    )
    output = process.communicate()[0].decode("utf-8", "replace")
    return process.returncode, output


def check_diagnostics(probe):
    code, text = run_site(["connlocal_status"])
    expect(code == 0, "connlocal_status exited %s: %s", code, text.strip()[-300:])
    json_code, raw = run_site(["connlocal_status", "--json"])
    expect(json_code == 0, "connlocal_status --json exited %s: %s", json_code, raw[-300:])
    try:
        reported = json.loads(raw)
    except ValueError:
        raise CheckFailed("connlocal_status --json printed no JSON: %r" % raw[:300])
    expect(reported["installed"] == probe.status["installed"],
           "the command says installed=%r, the probe found %r",
           reported["installed"], probe.status["installed"])
    mine = dict((key, probe.features[key]) for key in probe.features if key != "django_version")
    theirs = dict((key, reported["features"].get(key)) for key in mine)
    expect(theirs == mine, "the command's features %r differ from the probe's %r", theirs, mine)
    expect(len(reported["patches"]) == len(probe.status["patches"]),
           "the command lists %d patches, the probe's process has %d",
           len(reported["patches"]), len(probe.status["patches"]))
    done = "connlocal_status and --json agree with the probe"
    checks_output = None
    try:
        from django.core import checks
    except ImportError:  # Django 1.2-1.5
        checks = None
    if hasattr(checks, "register"):  # Django 1.7+ (1.6 has compatibility checks only)
        check_code, checks_output = run_site(["check"])
        expect(check_code == 0, "manage.py check exited %s: %s", check_code, checks_output[-300:])
        expect("connlocal_shim.I001" in checks_output,
               "manage.py check did not report connlocal_shim.I001: %s", checks_output[-300:])
        done += "; manage.py check reports connlocal_shim.I001"
    return done, text, checks_output


# -- the record ---------------------------------------------------------------------------------

def package_files(package_dir):
    """sha256 of every .py file of the installed connlocal_shim, by path inside the package."""
    digests = {}
    for root, _, files in os.walk(package_dir):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                relative = os.path.relpath(path, package_dir).replace(os.sep, "/")
                with open(path, "rb") as handle:
                    digests[relative] = hashlib.sha256(handle.read()).hexdigest()
    return digests


class LogRecords(logging.Handler):
    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append((record.levelname, record.getMessage()))


def probe(directory):
    started = time.time()
    record = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    configure(directory)
    import django

    record["django"] = django.get_version()
    # A site module that captured django.db.connection at import, before install.
    from django.db import connection as captured_connection

    import connlocal_shim

    record["connlocal_shim"] = connlocal_shim.__version__
    package_dir = os.path.dirname(os.path.abspath(connlocal_shim.__file__))
    record["connlocal_shim_path"] = package_dir
    record["connlocal_shim_files"] = package_files(package_dir)

    logger = logging.getLogger("connlocal_shim")
    log = LogRecords()
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    start_django()
    logger.removeHandler(log)
    record["install_log"] = {
        "info": [message for level, message in log.records if level == "INFO"],
        "debug_lines": len([1 for level, _ in log.records if level == "DEBUG"]),
        "warnings": [message for level, message in log.records if level == "WARNING"],
    }
    status = connlocal_shim.status()
    record["shim_status"] = status
    this = Probe(status)
    this.captured_connection = captured_connection
    record["features"] = {}
    for key in columns.FEATURE_KEYS:
        record["features"][key] = this.run(key)
    try:
        detail, text, checks_output = check_diagnostics(this)
        record["diagnostics"] = {"result": columns.PASSED, "detail": detail}
    except CheckFailed as failure:
        text = checks_output = None
        record["diagnostics"] = {"result": columns.FAILED, "detail": str(failure)}
    except Exception as error:  # reported in the record
        text = checks_output = None
        record["diagnostics"] = {"result": columns.FAILED, "detail": "%s: %s (%s)" % (
            type(error).__name__, error, last_frame())}
    record["status_command_output"] = text
    record["check_command_output"] = checks_output
    record["probe_seconds"] = round(time.time() - started, 2)
    return record


def main(argv):
    output = None
    if len(argv) == 3 and argv[1] == "--output":
        output = argv[2]
    elif len(argv) != 1:
        sys.stderr.write("usage: probe.py [--output FILE]\n")
        return 2
    directory = tempfile.mkdtemp(prefix="connlocal-shim-probe-")
    try:
        record = probe(directory)
        record["probe_error"] = None
    except Exception:  # the probe itself broke: the record says where, the runner shows it
        record = {"probe_error": traceback.format_exc()}
    text = json.dumps(record, indent=2, sort_keys=True)
    if output:
        with open(output, "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    failed = record["probe_error"] is not None or any(
        value["result"] == columns.FAILED for value in record["features"].values()
    ) or record["diagnostics"]["result"] == columns.FAILED
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
