"""Observe mode: find where a site uses one thread's connection from another, before the
backport (or Django 1.4) starts refusing it.

Django 1.2/1.3 keeps each alias in one process-wide DatabaseWrapper whose state is per thread
(``threading.local``): a thread calling ``cursor()`` on a wrapper it got from another thread
silently uses its own connection. Django 1.4 (ticket #17258) gives each thread its own wrapper
and raises DatabaseError when another thread calls one of its guarded methods. A site that
(often unknowingly) relied on the old way breaks at once when the backport is installed.

In observe mode (``CONNLOCAL_SHIM = {"MODE": "observe"}``, or ``set_mode("observe")``) the
backport is installed, but a guarded method called from a thread other than the wrapper's own
neither raises nor touches the other thread's connection: the call is made on the calling
thread's own wrapper for that database, as Django 1.3 would have made it, and the call site
(the first frame outside connlocal_shim, wrapt and Django) is recorded once, with a count, and
logged once at WARNING through the ``connlocal_shim`` logger. Those are the calls Django 1.4
refuses. Per-thread routing (route_connections, shared_connection, ``connections[alias] =
...``, the pinning middleware) needs the thread-local connections of enforce mode, and is
refused while observing. A cursor handed to another thread is not recorded: Django 1.4 does not
refuse it, and noticing it would put a proxy on every cursor of every query.
"""
import atexit
import json
import logging
import os
import sys
import threading
import time

from connlocal_shim.compat import string_types
from connlocal_shim.identity import PerThread, get_ident

try:
    import fcntl
except ImportError:  # not POSIX: the processes of one site write the file unlocked
    fcntl = None

logger = logging.getLogger("connlocal_shim")

ENFORCE, OBSERVE = "enforce", "observe"
MODES = (ENFORCE, OBSERVE)
SETTING = "CONNLOCAL_SHIM"

# Read on every guarded call (cursor() of every query): a list subscript, not a function call.
# True while observe mode is on; written only by the backport, under its lock.
OBSERVING = [False]

# A call site is the first frame outside these modules (and Django's, where there is one).
_OURS = ("connlocal_shim", "wrapt")
_TWINS = "_connlocal_shim_twins"  # in a wrapper's __dict__: each thread's own stand-in for it
TRANSACTION_METHODS = frozenset([
    "commit", "rollback", "commit_unless_managed", "rollback_unless_managed",
    "savepoint_commit", "savepoint_rollback", "_commit", "_rollback", "_savepoint_commit",
    "_savepoint_rollback",
])

_sightings = {}  # (filename, line) -> Sighting
_sightings_lock = threading.Lock()


def mode_errors(config):
    """What is wrong with ``CONNLOCAL_SHIM['MODE']`` and ``['OBSERVE_FILE']`` (``config`` is
    the setting), as sentences."""
    if not isinstance(config, dict):
        return []
    errors = []
    mode = config.get("MODE", ENFORCE)
    if mode not in MODES:
        errors.append("%s['MODE'] must be one of %s, not %r" % (
            SETTING, ", ".join(repr(name) for name in MODES), mode))
    if "OBSERVE_FILE" in config:
        path = config["OBSERVE_FILE"]
        if not isinstance(path, string_types) or not path:
            errors.append("%s['OBSERVE_FILE'] must be the path of a file, not %r"
                          % (SETTING, path))
        elif not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            errors.append("%s['OBSERVE_FILE'] is %r, whose directory does not exist"
                          % (SETTING, path))
    return errors


def configured_mode(settings=None):
    """The MODE the settings ask for ('enforce' without one), or ImproperlyConfigured naming
    what is wrong with it. Settings not configured yet (install() from a script before
    settings.configure()) mean the default."""
    from django.core.exceptions import ImproperlyConfigured

    if settings is None:
        from django.conf import settings
    try:
        config = getattr(settings, SETTING, None)
    except ImproperlyConfigured:  # settings not configured: nothing asks for a mode
        return ENFORCE
    errors = mode_errors(config)
    if errors:
        raise ImproperlyConfigured("connlocal_shim: " + "; ".join(errors))
    return config.get("MODE", ENFORCE) if isinstance(config, dict) else ENFORCE


PINNING_MIDDLEWARE = "connlocal_shim.middleware.ConnectionPinningMiddleware"


def pinning_middleware_installed(settings):
    installed = []
    for name in ("MIDDLEWARE", "MIDDLEWARE_CLASSES"):
        installed.extend(getattr(settings, name, None) or ())
    return PINNING_MIDDLEWARE in installed


MIDDLEWARE_CONFLICT = (
    "%s['MODE'] is 'observe', which keeps connections process-wide as this Django does, but "
    "%s re-points aliases for one thread (ROUTE_WRITES), which needs thread-local "
    "connections: use 'enforce' (the default) with the middleware, or observe without it "
    "first" % (SETTING, PINNING_MIDDLEWARE)
)


class Sighting(object):
    """One call site where a thread used a connection another thread opened."""

    __slots__ = ("filename", "line", "function", "alias", "method", "kind", "owner", "user",
                 "count")

    def __init__(self, filename, line, function, alias, method, owner, user):
        self.filename, self.line, self.function = filename, line, function
        self.alias, self.method = alias, method
        self.kind = "transaction" if method in TRANSACTION_METHODS else "connection"
        self.owner, self.user = owner, user
        self.count = 0

    @property
    def site(self):
        return "%s:%d" % (self.filename, self.line)

    def describe(self):
        return (
            "%s in %s(): thread %s called %s() on the %r connection of thread %s; "
            "Django 1.4 (and enforce mode) raises DatabaseError there" % (
                self.site, self.function, self.user, self.method, self.alias, self.owner)
        )

    def as_dict(self):
        return {
            "site": self.site, "filename": self.filename, "line": self.line,
            "function": self.function, "alias": self.alias, "method": self.method,
            "kind": self.kind, "owner_thread": self.owner, "thread": self.user,
            "count": self.count,
        }


def _thread_name(ident):
    thread = threading._active.get(ident)  # noqa (the only map of identities to threads)
    if thread is not None:
        return repr(thread.name)
    return "%s (ended, or a greenlet)" % ident


def call_site():
    """(filename, line, function) of the innermost frame outside connlocal_shim, wrapt and
    Django, or of the innermost frame outside connlocal_shim and wrapt if all are Django's."""
    frame = sys._getframe(1)
    fallback = None
    while frame is not None:
        name = frame.f_globals.get("__name__") or ""
        if name.partition(".")[0] not in _OURS:
            if fallback is None:
                fallback = frame
            if name.partition(".")[0] != "django":
                break
        frame = frame.f_back
    frame = frame if frame is not None else fallback
    if frame is None:
        return "<unknown>", 0, "<unknown>"
    code = frame.f_code
    return os.path.abspath(code.co_filename), frame.f_lineno, code.co_name


def record(wrapper, method):
    """The current thread called ``wrapper.method()`` on a wrapper another thread owns and
    did not share: count it at its call site, logging the first time (and writing the
    process's sightings to OBSERVE_FILE then, and at most every FLUSH_SECONDS after)."""
    state = wrapper.__dict__
    filename, line, function = call_site()
    key = (filename, line)
    with _sightings_lock:
        if _store["pid"] != os.getpid():  # a forked child: the parent reports its own
            _sightings.clear()
            _store["pid"] = os.getpid()
        sighting = _sightings.get(key)
        first = sighting is None
        if first:
            sighting = _sightings[key] = Sighting(
                filename, line, function, state.get("alias"), method,
                _thread_name(state.get("_thread_ident")),
                repr(threading.current_thread().name),
            )
        sighting.count += 1
    if first:
        logger.warning("connlocal_shim observe: %s", sighting.describe())
    if first or time.time() - _store["flushed"] >= FLUSH_SECONDS:
        write_sightings()


# -- the sightings of every process of a site, in one file (OBSERVE_FILE) -----------------------
# manage.py connlocal_status runs in a process of its own: each observing process merges what it
# saw into the file the setting names, under an exclusive lock, as {pid: its sightings}.

FLUSH_SECONDS = 10.0
_store = {"path": None, "read": False, "flushed": 0.0, "pid": os.getpid()}
_write_lock = threading.Lock()


def sightings_file():
    """CONNLOCAL_SHIM['OBSERVE_FILE'], or None (read once: settings are read-only by then)."""
    if not _store["read"]:
        # From sys.modules, not imported: this runs inside the observed call (see wrappers.py).
        conf = sys.modules.get("django.conf")
        try:
            config = getattr(conf.settings, SETTING, None) if conf is not None else None
        except Exception:  # settings not configured: no file
            config = None
        path = config.get("OBSERVE_FILE") if isinstance(config, dict) else None
        _store["path"] = os.path.abspath(path) if path else None
        _store["read"] = True
    return _store["path"]


def _locked(path):
    handle = open(path + ".lock", "a")
    if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle  # closing it releases the lock


def read_sightings_file(path):
    """{pid (str): {"updated": time, "sightings": [...]}} from ``path`` ({} if none yet)."""
    try:
        with open(path) as stored:
            data = json.load(stored)
    except (IOError, OSError, ValueError):
        return {}
    processes = data.get("processes") if isinstance(data, dict) else None
    return processes if isinstance(processes, dict) else {}


def write_sightings():
    """Merge this process's sightings into OBSERVE_FILE, if set. A failure to write is logged,
    never raised into the call that was observed."""
    path = sightings_file()
    if path is None:
        return
    with _write_lock:
        _store["flushed"] = time.time()
        mine = sightings()
        try:
            lock = _locked(path)
            try:
                processes = read_sightings_file(path)
                processes[str(os.getpid())] = {"updated": _store["flushed"], "sightings": mine}
                temporary = "%s.%d.tmp" % (path, os.getpid())
                with open(temporary, "w") as out:
                    json.dump({"processes": processes}, out, indent=1, sort_keys=True)
                os.rename(temporary, path)
            finally:
                lock.close()
        except (IOError, OSError) as error:
            logger.error("connlocal_shim observe: cannot write OBSERVE_FILE %s: %s", path, error)


def _write_at_exit():
    if _sightings and _store["pid"] == os.getpid():
        write_sightings()


atexit.register(_write_at_exit)


def site_sightings():
    """The sightings of every process that wrote OBSERVE_FILE, and of this one, summed by call
    site: (sightings, how many processes reported). Without the file, this process's."""
    path = sightings_file()
    processes = read_sightings_file(path) if path else {}
    processes[str(os.getpid())] = {"sightings": sightings()}  # this process: as it is now
    merged = {}
    reporting = 0
    for entry in processes.values():
        found = entry.get("sightings") or []
        reporting += bool(found)
        for item in found:
            key = (item["filename"], item["line"])
            if key in merged:
                merged[key]["count"] += item["count"]
            else:
                merged[key] = dict(item)
    return [merged[key] for key in sorted(merged)], reporting


def own_twin(wrapper, handler):
    """The calling thread's own wrapper standing for ``wrapper`` of another thread: what
    Django 1.3's one thread-local wrapper would have given this thread. Its
    ``connections[alias]`` where that is a wrapper of the same database, else a wrapper of
    its own made for it (kept per thread on ``wrapper``, gone when the thread ends)."""
    alias = wrapper.__dict__.get("alias")
    settings_dict = wrapper.__dict__.get("settings_dict")
    databases = getattr(handler, "databases", None) or {}
    if alias in databases and databases[alias] is settings_dict:
        own = handler[alias]
        if own.__dict__.get("settings_dict") is settings_dict and (
                own.__dict__.get("_thread_ident") == get_ident()):
            return own
    twins = wrapper.__dict__.get(_TWINS)
    if twins is None:
        made = type(wrapper)

        def make():
            return made(settings_dict, alias)

        twins = wrapper.__dict__.setdefault(_TWINS, PerThread(make))
    return twins.current()


def sightings():
    """Every call site recorded so far, as plain data, in the order of their files and lines."""
    with _sightings_lock:
        found = sorted(_sightings.items())
        return [sighting.as_dict() for _, sighting in found]


def forget_sightings():
    """Start counting afresh in this process (a test, or an operator after fixing what was
    found; delete OBSERVE_FILE to forget the other processes' too)."""
    with _sightings_lock:
        _sightings.clear()


def observing_handler_class(handler_class):
    """The backport's handler class while observing: Django 1.3's handler had no
    ``connections[alias] = ...`` nor ``del``, and per-thread re-pointing needs enforce mode."""

    def refuse(*args):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "connlocal_shim: observe mode keeps connections process-wide, as Django 1.3 does; "
            "re-pointing an alias for one thread (connections[alias] = ..., del, "
            "route_connections) needs enforce mode: connlocal_shim.set_mode('enforce')"
        )

    namespace = {
        "__setitem__": refuse, "__delitem__": refuse, "__module__": __name__,
        "__doc__": "django.db.connections in observe mode (connlocal_shim.observe).",
        "connlocal_shim_observing": True,
    }
    return type("ObservingConnectionHandler", (handler_class,), namespace)
