"""What "the current thread" means, looked up when it is needed: a thread, or a greenlet once
gevent or eventlet monkey-patched ``thread``, whether they did it before or after install().

Binding ``get_ident`` once at import (``from thread import get_ident``) would freeze the answer:
after a later ``gevent.monkey.patch_all()`` every greenlet of an OS thread would look like one
thread and share its connections. Here the patched module attribute is read on every call, and
:class:`PerThread` keeps one value per identity, freed as that thread or greenlet ends.
"""
import atexit
import logging
import os
import sys
import threading
import weakref

try:  # Python 2
    import thread as _thread
except ImportError:  # Python 3
    import _thread


def get_ident():
    """The identity of the current thread, or greenlet where gevent/eventlet patched thread."""
    return _thread.get_ident()


def current_greenlet():
    """The current greenlet where gevent or eventlet made a greenlet the unit of identity
    (their monkey patch of ``thread``), or None."""
    module = getattr(_thread.get_ident, "__module__", None) or ""
    if module.startswith(("gevent", "eventlet")):
        greenlet = sys.modules.get("greenlet")
        if greenlet is not None:
            return greenlet.getcurrent()
    return None


def thread_module():
    """The module whose ``get_ident`` is read on every call (for hot paths that inline it)."""
    return _thread


# -- the hottest path: get_ident bound once, until a library that swaps it arrives -------------
# Reading ``thread.get_ident`` on every ``connections[alias]`` costs a tenth of the lookup on
# Python 2.7. gevent and eventlet are what replace it (their monkey patch), and both must be
# imported first: until then the function can be bound once. Their first import is seen by an
# import-system finder that loads nothing, and each hot path bound so is told to read the
# module's function from then on.

GREEN_LIBRARIES = ("gevent", "eventlet")
_BINDERS = []  # callbacks, each called once the bound function may be stale


def bind_get_ident(bind, rebind):
    """Have a hot path bind ``thread.get_ident`` once: ``bind(get_ident)`` is called now,
    unless gevent or eventlet is loaded (or something replaced the function already), and
    ``rebind()`` once either of them is first imported later: the hot path must then read the
    function at each call. Returns whether it bound."""
    with _BINDERS_LOCK:
        if _green_library_loaded() or _thread.get_ident is not _ORIGINAL_GET_IDENT:
            return False
        bind(_thread.get_ident)
        _BINDERS.append(rebind)
        _watch_imports()
        return True


def forget_binding(rebind):
    """The hot path given to bound_get_ident() is gone (uninstalled)."""
    with _BINDERS_LOCK:
        if rebind in _BINDERS:
            _BINDERS.remove(rebind)


def get_ident_replaced():
    """Whether ``thread.get_ident`` is no longer the one bound on hot paths: tell them (for
    slow paths to call, in case it was replaced by something other than a green library)."""
    if _BINDERS and _thread.get_ident is not _ORIGINAL_GET_IDENT:
        _green_library_arrives()
        return True
    return False


_ORIGINAL_GET_IDENT = _thread.get_ident
_BINDERS_LOCK = threading.Lock()


def _green_library_loaded():
    return any(name in sys.modules for name in GREEN_LIBRARIES)


def _green_library_arrives():
    with _BINDERS_LOCK:  # a bind() under way completes first, and is then undone
        for rebind in _BINDERS:
            rebind()
        del _BINDERS[:]


class _GreenImportWatch(object):
    """In sys.meta_path from the first bind_get_ident() on: it finds no module, and on the
    first import of gevent or eventlet unbinds the hot paths bound then (before any of their
    code runs). Inert while none is bound."""

    def find_module(self, fullname, path=None):  # Python 2
        if fullname in GREEN_LIBRARIES and _BINDERS:
            _green_library_arrives()
        return None

    def find_spec(self, fullname, path=None, target=None):  # Python 3
        return self.find_module(fullname, path)


_WATCH = _GreenImportWatch()


def _watch_imports():
    """Add the finder once, for the life of the process: an import under way in another thread
    walks sys.meta_path while this runs. Python 2.7 walks it by index up to the length it read
    first (a finder taken out made __import__ raise IndexError there, and one put in front
    would push the last finder out of reach): the finder goes last, where Python 2's own
    importers come after sys.meta_path anyway. Python 3 iterates the list (taking one out
    skipped the next, PathFinder perhaps): first, before PathFinder, which would load the
    library itself."""
    if _WATCH in sys.meta_path:
        return
    if sys.version_info[0] == 2:
        sys.meta_path.append(_WATCH)
    else:
        sys.meta_path.insert(0, _WATCH)


class PerThread(object):
    """One value per thread (or greenlet), made by ``factory()`` on first use there.

    ``by_ident`` is ``{identity: value}``; read it as ``per_thread.by_ident[get_ident()]`` on a
    path, falling back to ``current()``. When the thread or greenlet ends, its value is dropped and
    ``on_end(identity, value)`` runs (unless ``retired``). The end is seen through a small object
    kept in a ``threading.local`` of the implementation in use when the identity first appeared
    (gevent's or eventlet's own local once they patched ``threading``), which dies with it::

        frames = PerThread(list)
        frames.current().append(frame)      # this thread's list only
    """

    __slots__ = ("by_ident", "factory", "on_end", "retired", "_locals", "_ends", "__weakref__")

    def __init__(self, factory, on_end=None):
        self.by_ident = {}
        self.factory = factory
        self.on_end = on_end
        self.retired = False
        self._locals = {}  # threading.local class in use -> our instance of it
        # identity -> the token of its watcher (a greenlet's: the weak reference watching it)
        self._ends = {}
        track(self)

    def current(self):
        """The current thread's value, made on its first use."""
        ident = _thread.get_ident()
        try:
            return self.by_ident[ident]
        except KeyError:
            return self.make(ident)

    def make(self, ident):
        """Make the value of the current thread, whose identity is ``ident``."""
        value = self.by_ident[ident] = self.factory()
        self._watch(ident, value)
        watch_forks()  # eventlet's monkey patch may have replaced the hook since
        return value

    def peek(self):
        """The current thread's value, or None if it has none yet."""
        return self.by_ident.get(_thread.get_ident())

    def _watch(self, ident, value):
        token = self._ends[ident] = object()
        green = current_greenlet()
        if green is not None:
            # A greenlet's identity (its id) is reused as soon as it is freed, and eventlet's
            # local keeps the state of the greenlet that used it last until another one does:
            # watch the greenlet itself, whose weak reference dies before its id can be reused.
            self._ends[ident] = weakref.ref(green, _greenlet_ended(weakref.ref(self), ident))
            return
        local_class = threading.local  # read now: a monkey patch may have replaced it
        local = self._locals.get(local_class)
        if local is None:
            # setdefault, not a store: threads meeting here at once (a fresh process's first
            # requests) would each store a local of their own, and the one replaced would take
            # with it the watchers of the threads that set theirs in it, ending their values
            # while they run. A local made in vain holds no thread's state yet.
            local = self._locals.setdefault(local_class, local_class())
        local.end = _End(weakref.ref(self), ident, token, os.getpid())

    def _ended(self, ident, token):
        if self._ends.get(ident) is not token:
            return  # a later thread (greenlet) got the same identity: its value is not ours
        del self._ends[ident]
        value = self.by_ident.pop(ident, None)
        if self.on_end is not None and value is not None and not self.retired:
            self.on_end(ident, value)

    def _orphaned(self, ident, token):
        """A thread of the parent process whose state a forked child freed (Python 3 clears
        the other threads' states in the child, 3.6 included): its value is kept, never
        released."""
        if self._ends.get(ident) is token:
            del self._ends[ident]
            keep_unreleased(self.by_ident.pop(ident, None))

    def live_greenlets(self):
        """The identities this table watches through a greenlet that is still alive."""
        return set(
            ident for ident, watcher in list(self._ends.items())
            if isinstance(watcher, weakref.ref) and watcher() is not None
        )

    def forget_other_threads(self, keep):
        """In a forked child: only the identities in ``keep`` (the forking thread's, and the
        greenlets that came along with it) still exist; the values of the others are dropped
        from the table and kept unreleased (see keep_unreleased)."""
        for ident in list(self.by_ident):
            if ident not in keep:
                self._ends.pop(ident, None)
                keep_unreleased(self.by_ident.pop(ident, None))
        pid = os.getpid()
        for local in list(self._locals.values()):
            end = getattr(local, "end", None)  # the forking thread's watcher, carried over
            if end is not None:
                end.pid = pid


# Set (in place: _End.__del__ holds it as a default) when the interpreter begins to exit.
_EXITING = []


def _exit_begins():
    _EXITING.append(True)


atexit.register(_exit_begins)


class _End(object):
    """Kept in a thread's (greenlet's) local state: tells its PerThread when that state dies.

    It holds nothing but a weak reference, the identity and the process it was made in: what a
    thread's local state refers to stays alive as long as the thread, whatever the cycle
    collector finds.
    """

    __slots__ = ("owner", "ident", "token", "pid")

    def __init__(self, owner, ident, token, pid):
        self.owner = owner
        self.ident = ident
        self.token = token  # tells this identity's first life from a later one
        self.pid = pid  # a state freed in another process is a forked child's copy

    def __del__(self, exiting=_EXITING, getpid=os.getpid):
        # Runs as the thread's state is torn down (PyThreadState_Clear), in the ending thread.
        # A thread that was joined as the program ended can still be there while the
        # interpreter is being finalized: running Python code then crashes it (seen on Python
        # 2.7), so once exit began this does nothing; what it would release goes with the
        # process. Otherwise it uses only what it holds.
        if exiting:
            return
        owner = self.owner()
        if owner is None:
            return
        if self.pid != getpid():  # a parent's thread, whose state a forked child frees
            owner._orphaned(self.ident, self.token)
        else:
            owner._ended(self.ident, self.token)


def _greenlet_ended(owner, ident):
    """The callback of the weak reference that watches a greenlet (it is also the token)."""

    def ended(reference, exiting=_EXITING):
        per_thread = None if exiting else owner()  # see _End.__del__
        if per_thread is not None:
            per_thread._ended(ident, reference)

    return ended


# -- fork -----------------------------------------------------------------------------------------
# A forked child has only the thread that forked (with its greenlets), yet every table above
# still holds the parent's other threads under their identities, which the child's next threads
# usually get again (glibc reuses a dead thread's stack, and with it the identity). Django 1.4
# (threading.local) starts such a thread afresh: so must we.

_TABLES = weakref.WeakSet()  # every PerThread, and each object with forget_other_threads(keep)

# What the child took from the parent's other threads: never released. Releasing a DB-API
# connection closes it, and MySQLdb's close tells the server to end the session, which is the
# parent's (psycopg2 checks the process first; sqlite has no session): Python 2.7 keeps those
# threads' states in a child, unreachable, and Django 1.4's connections with them.
_KEPT_FROM_PARENT = []


def keep_unreleased(value):
    if value is not None:
        _KEPT_FROM_PARENT.append(value)


def track(table):
    """Have ``table.forget_other_threads(keep)`` called in each forked child."""
    _TABLES.add(table)


def after_fork_in_child():
    """Forget, in every table, the threads the forked child does not have."""
    tables = list(_TABLES)
    keep = set([_thread.get_ident()])
    for table in tables:
        if isinstance(table, PerThread):
            keep |= table.live_greenlets()
    for table in tables:
        try:
            table.forget_other_threads(keep)
        except Exception:  # the child must go on: say what was not forgotten
            logging.getLogger("connlocal_shim").exception(
                "connlocal_shim: could not forget the parent's threads in %r", table
            )


def _threading_after_fork(previous):
    def _after_fork():
        try:
            previous()
        finally:
            after_fork_in_child()

    _after_fork.connlocal_shim_hook = True
    return _after_fork


def watch_forks():
    """Have after_fork_in_child() run in every forked child. Python 3.7+ has an API for it;
    before, the interpreter calls ``threading._after_fork()`` in the child, which is wrapped,
    again if a monkey patch (eventlet's) replaced it since: called at each thread's first use
    of a table."""
    if _REGISTERED:
        return
    hook = getattr(threading, "_after_fork", None)
    if hook is not None and not getattr(hook, "connlocal_shim_hook", False):
        threading._after_fork = _threading_after_fork(hook)


_REGISTERED = hasattr(os, "register_at_fork")
if _REGISTERED:
    os.register_at_fork(after_in_child=after_fork_in_child)
else:
    watch_forks()
