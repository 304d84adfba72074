"""One benchmark variant in its own process (Python 2.7 or 3), driven by bench/run.py.

    python bench/worker.py --db sqlite [--shim]            # micro-benchmarks, ORM, routing
    python bench/worker.py --db postgres --pg-port N [--shim]
    python bench/worker.py --db sqlite [--shim] --count CASE --rounds N  # for callgrind

It configures Django (bench_django.py), installs connlocal_shim with --shim, prints one JSON
line describing itself, then answers JSON requests, one per line on stdin, one JSON line each on
stdout, until stdin closes:

    {"op": "time", "case": "getitem", "seconds": 0.05}  ->  {"ns": 71.2, "n": 40000, ...}
    {"op": "time", "case": "nope"}                      ->  {"error": "BenchCaseError: ..."}
    {"op": "threads", "count": 1000, "concurrency": 10} ->  {"before": {...}, "after_gc": {...}}

A timed case is a statement compiled into a loop (unrolled, its names bound as locals); the
same loop with ``pass`` is timed right before it and subtracted, so "ns" is the cost of one
statement. Figure 4's anchors (other routers' blocks: django-dynamic-db-router's in_database,
django-multidb-router's use_primary_db) are imported when first asked for, in this process, and,
like the routing cases, refused unless a block of theirs really routes. A request that fails
is answered with its error and the worker goes on. The driver interleaves the variants of a
figure and repeats; this process only runs when asked, so variants never compete for the CPU.
With --count, the case's unroll is printed as one JSON line at the end.
"""
import argparse
import gc
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import bench_django  # noqa: E402

try:
    _range = xrange  # noqa: F821 (Python 2)
except NameError:
    _range = range

timer = getattr(time, "perf_counter", time.time)


# -- timed loops ---------------------------------------------------------------------------------

def compile_loop(statement, names, unroll):
    """A function timing ``n`` rounds of ``unroll`` copies of ``statement`` (names are locals)."""
    lines = statement.split("\n")
    body = "\n".join("        " + line for _ in range(unroll) for line in lines)
    params = "".join(", %s" % name for name in names)
    source = (
        "def loop(_n, _timer%s):\n"
        "    _rounds = _range(_n)\n"
        "    _t0 = _timer()\n"
        "    for _i in _rounds:\n"
        "%s\n"
        "    return _timer() - _t0\n" % (params, body)
    )
    namespace = {"_range": _range}
    exec(compile(source, "<bench %s>" % statement.split("\n")[0], "exec"), namespace)
    return namespace["loop"]


class Case(object):
    def __init__(self, statement, names, unroll=20, teardown=None):
        self.statement = statement
        self.names = names
        self.unroll = unroll
        self.loop = compile_loop(statement, sorted(names), unroll)
        self.baseline = compile_loop("pass", sorted(names), unroll)
        self.teardown = teardown
        self.rounds = None
        self.info = {}  # reported with each timing (an anchor: the module timed, its version)

    def run(self, rounds):
        return self.loop(rounds, timer, **self.names)

    def calibrate(self, seconds):
        rounds = 1
        while True:
            elapsed = self.run(rounds)
            if elapsed >= seconds / 10.0 or rounds >= 1 << 24:
                break
            rounds *= 4
        return max(1, int(rounds * seconds / max(elapsed, 1e-9)))

    def time(self, seconds):
        if self.rounds is None:
            self.run(max(1, 1000 // self.unroll))  # warm up (caches, first connection)
            self.rounds = self.calibrate(seconds)
        rounds = self.rounds
        empty = self.baseline(rounds, timer, **self.names)
        elapsed = self.run(rounds)
        ops = rounds * self.unroll
        result = {
            "ns": (elapsed - empty) / ops * 1e9,
            "gross_ns": elapsed / ops * 1e9,
            "n": ops,
            "unroll": self.unroll,
        }
        result.update(self.info)
        return result


def build_cases(state):
    """The timed statements this process can run, by name (figures 1-4)."""
    from django.db import connections

    cases = {}
    legacy, module_ref = state["legacy"], state["module_connection"]
    cases["getitem"] = Case('c["default"]', {"c": connections})
    if legacy is not None:
        cases["attr_ops_legacy"] = Case("conn.ops", {"conn": legacy})
        cases["attr_alias_legacy"] = Case("conn.alias", {"conn": legacy})
    cases["attr_ops_module"] = Case("conn.ops", {"conn": module_ref})
    cases["attr_alias_module"] = Case("conn.alias", {"conn": module_ref})
    from benchapp.models import Item

    cases["orm_get"] = Case("objects.get(pk=7)", {"objects": Item.objects}, unroll=1)
    cases["orm_count"] = Case(
        "objects.filter(value__lt=50).count()", {"objects": Item.objects}, unroll=1
    )
    return cases


ROUTING_CASES = ("route_bare", "route_alias", "route_wrapper", "route_alias_new",
                 "route_wrapper_new", "getitem_after_routing")

# Figure 4's anchors: other routers' blocks, timed as ours are (bench/envs.py installs them).
ANCHOR_CASES = ("anchor_in_database", "anchor_in_database_new", "anchor_use_primary_db")


class BenchCaseError(Exception):
    """A case that cannot be measured as asked (a block that routes nothing, say)."""


def check_block(name, make_block, probe, inside):
    """Refuse a case whose block would time nothing: within one block made by ``make_block``,
    ``probe()`` must be ``inside``, and after it no longer."""
    before = probe()
    with make_block():
        during = probe()
    after = probe()
    if during is not inside or after is inside or after is not before:
        raise BenchCaseError(
            "%s: the block does not route (probe %r before, %r within, %r after; wanted %r "
            "within only)" % (name, before, during, after, inside))


def routing_cases(connections):
    from connlocal_shim import route_connections
    from connlocal_shim.routing import new_wrapper, share

    shared = new_wrapper("other")  # a wrapper made shareable, as shared_connection() does
    share(shared)
    other = connections["other"]

    def current():
        return connections["default"]

    check_block("route_alias", lambda: route_connections(default="other"), current, other)
    check_block("route_wrapper", lambda: route_connections(default=shared), current, shared)
    names = {"c": connections, "w": other}
    cases = {
        # What a site could write by hand: re-point the alias for the thread, then restore it.
        "route_bare": Case('p = c["default"]\nc["default"] = w\nc["default"] = p', names, 10),
        # route_connections objects made once (a decorator's), entered and left each time.
        "route_alias": Case("with r:\n    pass", {"r": route_connections(default="other")}, 10),
        "route_wrapper": Case("with r:\n    pass", {"r": route_connections(default=shared)}, 10),
        # The `with route_connections(...)` form: constructing the object each time too.
        "route_alias_new": Case(
            'with route_connections(default="other"):\n    pass',
            {"route_connections": route_connections}, 10,
        ),
        "route_wrapper_new": Case(
            "with route_connections(default=w):\n    pass",
            {"route_connections": route_connections, "w": shared}, 10,
        ),
    }
    # Figure 4's first block (the checks above) enables the per-task overlay on Django 3.0+:
    # from here on every connections[alias] consults it (reported as getitem_after_routing).
    cases["getitem_after_routing"] = Case('c["default"]', {"c": connections})
    return cases


def anchor_case(name):
    """One anchor, imported and checked when first asked for: an anchor that does not import or
    does not route raises (the driver shows an error row, never a blank)."""
    if name in ("anchor_in_database", "anchor_in_database_new"):
        # django-dynamic-db-router: a thread-local stack that its DynamicDbRouter reads.
        from dynamic_db_router import DynamicDbRouter, in_database

        router = DynamicDbRouter()
        reads = {"default": "default", "other": "other"}  # interned: compared with `is`
        check_block(name, lambda: in_database("other"),
                    lambda: reads.get(router.db_for_read(None)), "other")
        if name == "anchor_in_database":  # made once, as a decorator's
            case = Case("with r:\n    pass", {"r": in_database("other")}, 10)
        else:
            case = Case('with in_database("other"):\n    pass', {"in_database": in_database}, 10)
        import dynamic_db_router.version as module
    elif name == "anchor_use_primary_db":
        # django-multidb-router: one module-level object pinning the thread to the primary.
        from multidb.pinning import this_thread_is_pinned, use_primary_db

        check_block(name, lambda: use_primary_db, this_thread_is_pinned, True)
        case = Case("with r:\n    pass", {"r": use_primary_db}, 10)
        import multidb as module
    else:
        raise BenchCaseError("unknown anchor %r" % name)
    # What was timed, in this process: the module's file (in this worker's venv) and version.
    case.info = {"module": module.__file__,
                 "version": getattr(module, "__version__", None)}
    return case


def get_case(cases, name, routing, connections):
    """The case ``name``, built on first use: routing cases all at once (the first block enables
    the per-task overlay on Django 3.0+, which changes connections[alias] for the rest of the
    process), anchors one by one."""
    if name not in cases:
        if name in routing:
            cases.update(routing_cases(connections))
        elif name in ANCHOR_CASES:
            cases[name] = anchor_case(name)
        else:
            raise BenchCaseError("no case %r in this worker (it has %s)"
                                 % (name, ", ".join(sorted(cases) + list(routing))))
    return cases[name]


def wsgi_request_case():
    """One request of figure 5's view through Django's WSGI handler, in-process (no server):
    what callgrind counts for figure 5."""
    try:
        from django.core.wsgi import get_wsgi_application  # Django 1.4+
    except ImportError:
        from django.core.handlers.wsgi import WSGIHandler as get_wsgi_application
    from io import BytesIO

    application = get_wsgi_application()
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def request():
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/items/", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.input": BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        del statuses[:]
        body = application(environ, start_response)
        b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()  # request_finished: Django closes the thread's connections
        if not statuses[0].startswith("200"):
            raise RuntimeError("the bench view answered %s" % statuses[0])

    return Case("request()", {"request": request}, unroll=1)


# -- figure 6: short-lived threads ----------------------------------------------------------------

def rss_kib():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except IOError:
        pass
    return None


def _is_wrapper(obj):
    try:
        mro = type(obj).__mro__
    except AttributeError:
        return False
    return any(klass.__name__ == "BaseDatabaseWrapper" for klass in mro)


def census(state):
    """Live DatabaseWrapper objects (with the shim: also the redirected legacy one), open
    DB-API connections and server backends (the monitor's own not counted), RSS."""
    objects = gc.get_objects()
    wrappers = sum(1 for obj in objects if _is_wrapper(obj))
    dbapi = state["dbapi_connection_type"]
    monitor = state.get("monitor")
    dbapi_open = sum(
        1 for obj in objects
        if type(obj) is dbapi and obj is not monitor and not getattr(obj, "closed", 1)
    )
    del objects
    return {
        "wrappers": wrappers,
        "dbapi_connections_open": dbapi_open,
        "server_connections": server_connections(state),
        "rss_kib": rss_kib(),
    }


def server_connections(state):
    """Backends of the bench database other than the monitor's own, once the count settles."""
    monitor = state.get("monitor")
    if monitor is None:
        return None
    cursor = monitor.cursor()
    last, stable = None, 0
    deadline = timer() + 5.0
    while timer() < deadline:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [bench_django.PG_DATABASE],
        )
        count = cursor.fetchone()[0]
        stable = stable + 1 if count == last else 0
        last = count
        if stable >= 3:
            break
        time.sleep(0.05)  # a closed client socket ends its backend asynchronously
    return last


def short_lived_threads(state, count, concurrency):
    from django.db import connections
    from benchapp.models import Item

    errors = []

    def work():
        try:
            Item.objects.get(pk=7)  # opens this thread's connection; the thread ends, no close()
        except Exception as error:  # reported, never hidden
            errors.append("%s: %s" % (type(error).__name__, error))

    connections["default"].cursor()
    gc.collect()
    result = {"before": census(state)}
    started = timer()
    done = 0
    while done < count:
        batch = [threading.Thread(target=work) for _ in range(min(concurrency, count - done))]
        for thread in batch:
            thread.start()
        for thread in batch:
            thread.join()
        done += len(batch)
    result["seconds"] = timer() - started
    result["after"] = census(state)
    gc.collect()
    result["after_gc"] = census(state)
    result["errors"] = len(errors)
    result["first_errors"] = errors[:3]
    return result


# -- main ---------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-port", type=int)
    parser.add_argument("--shim", action="store_true")
    parser.add_argument("--mode", choices=("enforce", "observe"), default="enforce",
                        help="CONNLOCAL_SHIM['MODE'] (with --shim)")
    parser.add_argument("--count", metavar="CASE",
                        help="run CASE --rounds times and exit (for callgrind's counts)")
    parser.add_argument("--rounds", type=int, default=0)
    options = parser.parse_args()

    import django

    legacy = bench_django.configure(options.db, options.pg_port, options.shim, options.mode)
    import django.db
    from django.db import connections

    state = {
        "shim": options.shim,
        "legacy": legacy,
        "module_connection": django.db.connection,
        "dbapi_connection_type": None,
    }
    if options.db == "sqlite":
        bench_django.create_table(connections["default"], "sqlite")
    else:
        import psycopg2

        state["dbapi_connection_type"] = psycopg2.extensions.connection
        state["monitor"] = psycopg2.connect(
            host="127.0.0.1", port=options.pg_port, user=bench_django.PG_USER,
            dbname="postgres",
        )
        state["monitor"].autocommit = True
    cases = build_cases(state) if options.db == "sqlite" else {"request": wsgi_request_case()}
    routing = ROUTING_CASES if options.db == "sqlite" and options.shim else ()
    describe = {
        "python": "%d.%d.%d" % sys.version_info[:3],
        "django": django.get_version(),
        "shim": options.shim,
        "db": options.db,
        "cases": sorted(cases) + list(routing) + list(ANCHOR_CASES),
        "legacy_is_module_connection": legacy is django.db.connection,
        "module_connection_type": type(django.db.connection).__name__,
    }
    if options.shim:
        import connlocal_shim

        describe["shim_patches"] = len(connlocal_shim.status()["patches"])
    if options.count:
        case = get_case(cases, options.count, routing, connections)
        case.run(max(1, 1000 // case.unroll))  # the same warm-up as a timed case
        case.run(options.rounds)
        sys.stdout.write(json.dumps({"case": options.count, "unroll": case.unroll,
                                     "rounds": options.rounds}) + "\n")
        return
    out = sys.stdout
    out.write(json.dumps(describe) + "\n")
    out.flush()
    for line in iter(sys.stdin.readline, ""):
        request = json.loads(line)
        try:
            if request["op"] == "time":
                case = get_case(cases, request["case"], routing, connections)
                reply = case.time(request.get("seconds", 0.05))
            elif request["op"] == "threads":
                reply = short_lived_threads(state, request["count"], request["concurrency"])
            else:
                reply = {"error": "unknown op %r" % request["op"]}
        except Exception as error:  # reported to the driver as this request's error row
            import traceback

            reply = {"error": "%s: %s" % (type(error).__name__, error),
                     "traceback": traceback.format_exc()}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
