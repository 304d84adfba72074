"""The thread-local connections handler of the backport (Django 1.4's, ticket #17258).

Before Django 1.4, ``django.db.connections`` kept one DatabaseWrapper per alias in a dict shared
by every thread. The backport gives the handler a :class:`ThreadConnections` storage, so each
thread has its own wrappers, and per-thread ``connections[alias] = wrapper`` and
``del connections[alias]``. Only ``django.db.connections`` itself gets the new class (its
``__class__`` is swapped to a subclass), so other ConnectionHandler objects are untouched.
"""
import threading

from connlocal_shim.compat import get_ident, string_types


class ThreadConnections(threading.local):
    """Each thread's own ``{alias: DatabaseWrapper}``, in ``.wrappers``; what a thread opened is
    closed when the thread ends (see ThreadEnd), while ``switch`` is on."""

    def __init__(self, switch):
        self.wrappers = {}
        self.thread_end = ThreadEnd(self.wrappers, switch)


class Switch(object):
    """Shared by the ThreadEnd objects of one install: off once it is uninstalled."""

    __slots__ = ("on",)

    def __init__(self):
        self.on = True


class ThreadEnd(object):
    """Closes, when its thread ends, the DB-API connections its thread opened and shares with
    no other thread, as Django 1.2/1.3 did (their threading.local wrapper's per-thread state
    died with the thread). Without it an open connection would wait for the cycle collector,
    since a DatabaseWrapper refers to itself; Django 1.4 leaves it there.

    It lives in the thread's ThreadConnections state, so it is discarded (and ``__del__``
    runs, in the ending thread) when that state is: nothing else refers to it.
    """

    __slots__ = ("wrappers", "switch", "ident")

    def __init__(self, wrappers, switch):
        self.wrappers = wrappers
        self.switch = switch
        self.ident = get_ident()

    def __del__(self):
        # Runs as the thread's state is torn down, possibly at interpreter exit: it uses only
        # what it holds and builtins, and never raises (nobody could catch it).
        if not self.switch.on:
            return  # uninstalled: the connections moved back to Django's wrappers
        for wrapper in list(self.wrappers.values()):
            state = getattr(wrapper, "__dict__", None)
            if not state or state.get("_thread_ident") != self.ident:
                continue  # another thread's wrapper, routed to for this thread
            if state.get("allow_thread_sharing"):
                continue  # shared: another thread may be using it
            connection = state.get("connection")
            if connection is None:
                continue
            state["connection"] = None
            try:
                connection.close()
            except Exception:
                pass  # already broken: the server dropped it, as closing would


def thread_local_handler_class(handler_class, storage, open_wrapper, unwrap):
    """A subclass of Django's ConnectionHandler whose connections live in ``storage``.

    ``open_wrapper(handler, alias)`` creates the current thread's wrapper on first use;
    ``unwrap(value)`` turns a redirected legacy reference into the wrapper it stands for, or
    returns None for anything that is not a DatabaseWrapper.
    """

    # Types whose instances unwrap() returned as they are: a DatabaseWrapper class (never a
    # legacy reference's proxy class, nor an object proxy whose __class__ names another class).
    # unwrap() gives the same answer for every instance of such a type while this install
    # lasts, so __setitem__ skips it for them: route_connections sets aliases twice per block.
    plain_wrapper_types = set()

    class ThreadLocalConnectionHandler(handler_class):
        """django.db.connections with per-thread wrappers (connlocal_shim's backport of #17258).

        ``connections['default']`` is the current thread's wrapper; assigning or deleting an
        alias affects the current thread only::

            connections["default"] = connections["master"]   # this thread only
            del connections["default"]                        # back to settings, this thread
        """

        def __getitem__(self, alias):
            # The hot path of every query: one thread-local attribute and one dict lookup.
            try:
                return storage.wrappers[alias]
            except KeyError:
                return open_wrapper(self, alias)

        def __setitem__(self, alias, wrapper):
            if type(alias) is str and type(wrapper) in plain_wrapper_types:
                storage.wrappers[alias] = wrapper
                return
            if not isinstance(alias, string_types):
                raise TypeError(
                    "connlocal_shim: connection aliases are strings, not %s" % type(alias).__name__
                )
            target = unwrap(wrapper)
            if target is None:
                raise TypeError(
                    "connlocal_shim: connections[%r] can only be set to a DatabaseWrapper "
                    "(such as connections['other']), not %s" % (alias, type(wrapper).__name__)
                )
            if target is wrapper and wrapper.__class__ is type(wrapper):
                plain_wrapper_types.add(type(wrapper))
            storage.wrappers[alias] = target

        def __delitem__(self, alias):
            wrappers = storage.wrappers
            if alias in wrappers:
                del wrappers[alias]
            elif alias not in self.databases:
                from django.db.utils import ConnectionDoesNotExist

                raise ConnectionDoesNotExist(
                    "connlocal_shim: cannot delete connections[%r]: no such alias in DATABASES "
                    "(known: %s)" % (alias, ", ".join(sorted(self.databases)))
                )

    ThreadLocalConnectionHandler.__module__ = __name__
    return ThreadLocalConnectionHandler
