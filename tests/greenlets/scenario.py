"""One process of a site under gevent or eventlet, as test_greenlet_semantics.py starts it:

    python scenario.py LIBRARY ORDER DATABASE

LIBRARY is gevent or eventlet; ORDER says when the monkey patch runs: "before" Django starts
(and connlocal_shim installs from INSTALLED_APPS), as gunicorn's -k gevent worker does,
"after", as under gunicorn --preload (the master installs, the worker patches), or "between",
after Django's database layer was imported and before install (a command that patches on its
own, such as ``manage.py celery worker -P eventlet``); DATABASE is
"sqlite" (a file) or "postgres" (the test's throwaway cluster, whose port is in
CONNLOCAL_GREEN_PG_PORT). It prints what it saw, one line per check (``PART name {json}``, after
``RUNNING name``), and the test judges it: a check that hangs the whole process (greenlets
blocked on one DB-API connection block the OS thread) is found by the line missing. Nothing here calls close(): the checks of what is left open at the end rely on it.

Checks, each with greenlets that interleave on purpose (``sleep(0)`` between two queries):

- own: GREENLETS greenlets, all alive at once (a gate), each its own wrapper
  (``id(connections[alias])``), DB-API connection and server session or open file;
- transactions (postgres): each writes two rows in one transaction with a yield between, half
  commit and half roll back: what the database holds afterwards says whether they interleaved;
- sharing: a wrapper made in one greenlet and used in another raises DatabaseError, unless
  shared (``shared_connection`` and ``route_connections``, or ``allow_thread_sharing``);
- left: once the greenlets have ended, how many server sessions / open files remain.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # greenlib; support (tests/)

import greenlib  # noqa: E402

GREENLETS = 6
GATE_TIMEOUT = 20
JOIN_TIMEOUT = 20
APPLICATION_NAME = "connlocal-green-scenario"
WATCH_NAME = "connlocal-green-watch"

LIBRARY, ORDER, DATABASE = sys.argv[1:4]
lib = greenlib.load(LIBRARY)
result = {"library": "%s %s" % (lib.name, lib.version), "order": ORDER, "database": DATABASE}

if ORDER == "before":
    lib.patch()

import support  # noqa: E402

ALIAS = "pg" if DATABASE == "postgres" else "default"
PG_PORT = os.environ.get("CONNLOCAL_GREEN_PG_PORT")


def pg_databases():
    if DATABASE != "postgres":
        return {}
    return {
        ALIAS: {
            "ENGINE": support.postgres_engine(),
            "NAME": "master",
            "USER": support.pg_cluster.SUPERUSER,
            "HOST": support.pg_cluster.HOST,
            "PORT": PG_PORT,
            "OPTIONS": {"application_name": APPLICATION_NAME},
        }
    }


directory = support.configure(extra_databases=pg_databases())
if ORDER == "between":
    # Django's database layer imported (and its wrapper classes made, threading.local their
    # base), then the patch, then install: `manage.py celery worker -P eventlet` and any
    # command that patches on its own, after Django's settings and models loaded.
    import django.db  # noqa: F401
    lib.patch()
try:
    support.start_django()  # INSTALLED_APPS = ["connlocal_shim"]: the app cache installs it
    result["start_error"] = None
except Exception as error:  # reported: the test fails on it, saying what it was
    result["start_error"] = "%s: %s" % (type(error).__name__, error)

if ORDER == "after":
    lib.patch()

import connlocal_shim  # noqa: E402
from django.db import DatabaseError, connections, transaction  # noqa: E402

status = connlocal_shim.status()
result["status"] = {"installed": status["installed"], "refused": status["refused"]}
for key in sorted(status):  # whatever else the status says about a failed install
    if key not in ("features", "patches", "installed", "refused") and "error" in key:
        result["status"][key] = status[key]


# The greenlet that installed (the main one) queries through each alias it can use: on an alias
# that had a wrapper before install it keeps that wrapper's state, or, where the patch came
# after Django's import, starts afresh as any greenlet does.
result["main"] = {}
for main_alias in sorted(set(["default", ALIAS])):
    try:
        main_cursor = connections[main_alias].cursor()
        main_cursor.execute("SELECT 1")
        result["main"][main_alias] = None if main_cursor.fetchone()[0] == 1 else "no row"
    except Exception as error:  # reported: the test fails on it
        result["main"][main_alias] = "%s: %s" % (type(error).__name__, error)
    finally:
        connections[main_alias].close()  # the counts of what is open are the greenlets'


# -- what identifies a connection --------------------------------------------------------------

def watch_connection():
    import psycopg2

    connection = psycopg2.connect(
        host=support.pg_cluster.HOST, port=int(PG_PORT), user=support.pg_cluster.SUPERUSER,
        dbname="master", application_name=WATCH_NAME,
    )
    connection.autocommit = True
    return connection


def watch_sql(sql, params=()):
    connection = watch_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else None
    finally:
        connection.close()


def database_file():
    return os.path.realpath(connections.databases["default"]["NAME"])


def open_files():
    """How many file descriptors of this process are open on the sqlite database file."""
    path, count = database_file(), 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.path.realpath(os.readlink(os.path.join("/proc/self/fd", fd))) == path:
                count += 1
        except OSError:
            pass  # closed meanwhile (the fd of listdir itself)
    return count


def open_sessions():
    """How many server sessions of the site (its application_name) are open now."""
    (count,), = watch_sql(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME])
    return count


def left_open():
    return open_sessions() if DATABASE == "postgres" else open_files()


def session_of(wrapper):
    """The server session (postgres) or the DB-API connection object (sqlite) behind a query
    through ``wrapper``, as a string."""
    cursor = wrapper.cursor()
    if DATABASE == "postgres":
        cursor.execute("SELECT pg_backend_pid()")
        return "pid %s" % cursor.fetchone()[0]
    cursor.execute("SELECT 1")
    cursor.fetchone()
    return "connection 0x%x" % id(wrapper.connection)


def failure(error):
    return "%s: %s" % (type(error).__name__, error)


# -- the checks --------------------------------------------------------------------------------

def check_own():
    """GREENLETS greenlets alive at once, each with a query before and after the gate."""
    seen = {}
    arrived = []
    gate = lib.Gate()
    during = {}

    def work(number):
        record = seen[number] = {}
        try:
            wrapper = connections[ALIAS]
            record["wrapper"] = "0x%x" % id(wrapper)
            record["first"] = session_of(wrapper)
            lib.sleep(0)
            arrived.append(number)
            if len(arrived) == GREENLETS:
                during["left_open"] = left_open()  # every greenlet holds its connection now
                gate.open()
            elif not gate.wait(GATE_TIMEOUT):
                record["error"] = "the gate did not open in %ss" % GATE_TIMEOUT
            lib.sleep(0)
            record["second"] = session_of(connections[ALIAS])
            record["same_wrapper"] = connections[ALIAS] is wrapper
        except Exception as error:
            record["error"] = failure(error)

    tasks = [lib.spawn(work, number) for number in range(GREENLETS)]
    finished = lib.join(tasks, JOIN_TIMEOUT)
    del tasks
    return {"greenlets": [seen.get(number) for number in range(GREENLETS)], "count": GREENLETS,
            "finished": finished, "open_during": during.get("left_open")}


TABLE = "green_writes_%s_%s" % (LIBRARY, ORDER)


def check_transactions():
    """Two rows per greenlet in one transaction, a yield between them; odd greenlets roll back."""
    watch_sql("DROP TABLE IF EXISTS %s" % TABLE)
    watch_sql(
        "CREATE TABLE %s (greenlet integer, seq integer,"
        " txid bigint DEFAULT txid_current(), pid integer DEFAULT pg_backend_pid())" % TABLE)
    seen = {}

    class RollBack(Exception):
        pass

    def write(number):
        record = seen[number] = {"commit": number % 2 == 0}

        @transaction.commit_on_success(using=ALIAS)
        def rows():
            cursor = connections[ALIAS].cursor()
            for seq in (0, 1):
                cursor.execute("INSERT INTO %s (greenlet, seq) VALUES (%%s, %%s)" % TABLE,
                               [number, seq])
                transaction.set_dirty(using=ALIAS)
                lib.sleep(0)
                lib.sleep(0)
            if not record["commit"]:
                raise RollBack()

        try:
            rows()
        except RollBack:
            pass
        except Exception as error:
            record["error"] = failure(error)

    tasks = [lib.spawn(write, number) for number in range(GREENLETS)]
    finished = lib.join(tasks, JOIN_TIMEOUT)
    del tasks
    rows = watch_sql("SELECT greenlet, seq, txid, pid FROM %s ORDER BY greenlet, seq" % TABLE)
    return {"greenlets": [seen.get(number) for number in range(GREENLETS)],
            "finished": finished, "rows": rows}


def check_sharing():
    """A wrapper used by another greenlet than its own: refused unless shared."""
    from connlocal_shim import route_connections, shared_connection

    record = {}

    def other_use(wrapper, key):
        try:
            record[key] = session_of(wrapper)
        except DatabaseError as error:
            record[key + "_error"] = failure(error)
        except Exception as error:
            record[key + "_unexpected"] = failure(error)

    def routed_use(wrapper):
        try:
            with route_connections(**{ALIAS: wrapper}):
                record["routed"] = session_of(connections[ALIAS])
        except Exception as error:
            record["routed_error"] = failure(error)

    def owner():
        try:
            wrapper = connections[ALIAS]
            record["owner"] = session_of(wrapper)
            lib.join([lib.spawn(other_use, wrapper, "unshared")], JOIN_TIMEOUT)
            with shared_connection(ALIAS) as shared:
                lib.join([lib.spawn(routed_use, shared)], JOIN_TIMEOUT)
            wrapper.allow_thread_sharing = True
            try:
                lib.join([lib.spawn(other_use, wrapper, "allowed")], JOIN_TIMEOUT)
            finally:
                wrapper.allow_thread_sharing = False
            lib.join([lib.spawn(other_use, wrapper, "unshared_again")], JOIN_TIMEOUT)
        except Exception as error:
            record["owner_error"] = failure(error)

    record["finished"] = lib.join([lib.spawn(owner)], JOIN_TIMEOUT * 5)
    return record


def check_left():
    """Once every greenlet has ended: what stays open (polled for a while on postgres, where a
    backend leaves pg_stat_activity a moment after its client closed)."""
    deadline = time.time() + 10
    while True:
        count = left_open()
        if count == 0 or time.time() >= deadline:
            return count
        lib.sleep(0.05)


checks = [("own", check_own)]
if DATABASE == "postgres":
    checks.append(("transactions", check_transactions))
checks.append(("sharing", check_sharing))


def emit(kind, name, value=None):
    """One line of the report: the test reads them even from a process it had to kill."""
    sys.stdout.write("%s %s %s\n" % (kind, name, json.dumps(value, sort_keys=True)))
    sys.stdout.flush()


emit("PART", "start", result)
hung = None
for name, check in checks:
    if hung:
        # A greenlet still stuck (on a connection another one shares, say) would stall every
        # later check too.
        emit("PART", name, {"error": "not run: greenlets of the %r check never finished" % hung})
        continue
    emit("RUNNING", name)
    try:
        value = check()
    except Exception as error:
        value = {"error": failure(error)}
    emit("PART", name, value)
    if value.get("finished") is False:
        hung = name
emit("RUNNING", "left_open")
emit("PART", "left_open", "not counted: greenlets never finished" if hung else check_left())
emit("DONE", "-")
