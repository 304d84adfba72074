"""What "the current thread" means, looked up when it is needed: a thread, or a greenlet once
gevent or eventlet monkey-patched ``thread``, whether they did it before or after install().

Binding ``get_ident`` once at import (``from thread import get_ident``) would freeze the answer:
after a later ``gevent.monkey.patch_all()`` every greenlet of an OS thread would look like one
thread and share its connections. Here the patched module attribute is read on every call, and
:class:`PerThread` keeps one value per identity, freed as that thread or greenlet ends.
"""
import atexit
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
    def current(self):
        """The current thread's value, made on its first use."""
        ident = _thread.get_ident()
        try:
            return self.by_ident[ident]
        except KeyError:
            value = self.by_ident[ident] = self.factory()
            self._watch(ident, value)
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
            local = self._locals[local_class] = local_class()
        local.end = _End(weakref.ref(self), ident, token)

    def _ended(self, ident, token):
        if self._ends.get(ident) is not token:
            return  # a later thread (greenlet) got the same identity: its value is not ours
        del self._ends[ident]
        value = self.by_ident.pop(ident, None)
        if self.on_end is not None and value is not None and not self.retired:
            self.on_end(ident, value)


# Set (in place: _End.__del__ holds it as a default) when the interpreter begins to exit.
_EXITING = []


def _exit_begins():
    _EXITING.append(True)


atexit.register(_exit_begins)


class _End(object):
    """Kept in a thread's (greenlet's) local state: tells its PerThread when that state dies.

    It holds nothing but a weak reference and the identity: what a thread's local state refers
    to stays alive as long as the thread, whatever the cycle collector finds.
    """

    __slots__ = ("owner", "ident", "token")

    def __init__(self, owner, ident, token):
        self.owner = owner
        self.ident = ident
        self.token = token  # tells this identity's first life from a later one

    def __del__(self, exiting=_EXITING):
        # Runs as the thread's state is torn down (PyThreadState_Clear), in the ending thread.
        # A thread that was joined as the program ended can still be there while the
        # interpreter is being finalized: running Python code then crashes it (seen on Python
        # 2.7), so once exit began this does nothing; what it would release goes with the
        # process. Otherwise it uses only what it holds.
        if exiting:
            return
        owner = self.owner()
        if owner is not None:
            owner._ended(self.ident, self.token)


def _greenlet_ended(owner, ident):
    """The callback of the weak reference that watches a greenlet (it is also the token)."""

    def ended(reference, exiting=_EXITING):
        per_thread = None if exiting else owner()  # see _End.__del__
        if per_thread is not None:
            per_thread._ended(ident, reference)

    return ended
