"""A wrapt-based instrumentation on the client site, as New Relic's agent instruments Django:
``wrapt.wrap_function_wrapper(MODULE, "BaseDatabaseWrapper.cursor", ...)``, whose cursors
report every execute(); MODULE is where this Django defines the class (``django.db.backends``
up to 1.7, ``django.db.backends.base.base`` since 1.8). Applied before connlocal_shim installs (tool-first) or after.
Then the main thread and THREADS threads each run queries by every way a site does: the ORM,
``django.db.connection`` (captured at import), ``connections["pg"]`` where PostgreSQL is
configured; each query carries a marker. Prints every query the instrumentation saw.
"""
import threading

import wrapt

import sitestart

THREADS = 3
seen = []
seen_lock = threading.Lock()


class TracedCursor(wrapt.ObjectProxy):
    def __init__(self, cursor, alias):
        super(TracedCursor, self).__init__(cursor)
        self._self_alias = alias

    def execute(self, sql, params=()):
        with seen_lock:
            seen.append([threading.current_thread().name, self._self_alias,
                         " ".join(str(param) for param in params)])
        return self.__wrapped__.execute(sql, params)


def traced_cursor(wrapped, instance, args, kwargs):
    return TracedCursor(wrapped(*args, **kwargs), instance.alias)


def base_wrapper_module():
    import importlib

    for name in ("django.db.backends.base.base", "django.db.backends"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if "BaseDatabaseWrapper" in vars(module):
            return name
    raise LookupError("no module of django.db.backends defines BaseDatabaseWrapper")


def instrument():
    wrapt.wrap_function_wrapper(base_wrapper_module(), "BaseDatabaseWrapper.cursor", traced_cursor)


result = sitestart.start(before_install=instrument)
if result["order"] == "shim-first":
    instrument()

from django.db import connection, connections  # noqa: E402

from notes.models import Note  # noqa: E402

ran = []
errors = []


def queries():
    name = threading.current_thread().name
    try:
        Note.objects.filter(text="%s-orm" % name).count()
        ran.append([name, "default", "%s-orm" % name])
        connection.cursor().execute("SELECT %s", ["%s-raw" % name])
        ran.append([name, "default", "%s-raw" % name])
        if "pg" in connections.databases:
            connections["pg"].cursor().execute("SELECT %s", ["%s-pg" % name])
            ran.append([name, "pg", "%s-pg" % name])
    except Exception as error:
        errors.append("%s: %s: %s" % (name, type(error).__name__, error))


seen[:] = []  # syncdb's own queries are not the point
threads = [threading.Thread(target=queries, name="thread-%d" % number) for number in range(THREADS)]
for thread in threads:
    thread.start()
queries()
for thread in threads:
    thread.join(60)
result.update(ran=sorted(ran), seen=sorted(seen), errors=errors)
sitestart.report(result)
