"""The thread-local connections handler of the backport (Django 1.4's, ticket #17258).

Before Django 1.4, ``django.db.connections`` kept one DatabaseWrapper per alias in a dict shared by
every thread. The backport gives the handler a :class:`ThreadConnections` storage, so each
thread (each greenlet, under gevent or eventlet) has its own wrappers, and per-thread
``connections[alias] = wrapper`` and ``del connections[alias]``. Only ``django.db.connections``
itself gets the new class (its ``__class__`` is swapped to a subclass), so other
ConnectionHandler objects are untouched.
"""
from connlocal_shim.compat import string_types
from connlocal_shim.identity import (
    PerThread,
    bind_get_ident,
    get_ident_replaced,
    thread_module,
)


def release_connections(ident, wrappers):
    """What unpatched Django 1.2/1.3 did when a thread ended: the thread's state of its
    threading.local wrappers died, and with it the reference to each DB-API connection, which
    closed when its *last* reference went. Here: the wrappers the ending thread created and
    shares with nobody drop their connection; whoever else still holds it keeps it open.

    Runs as the thread's state is torn down, possibly at interpreter exit: it uses only what it
    is given (module globals may be gone already).
    """
    for wrapper in list(wrappers.values()):
        state = getattr(wrapper, "__dict__", None)
        if not state or state.get("_thread_ident") != ident:
            continue  # another thread's wrapper, routed to for this thread
        if state.get("allow_thread_sharing"):
            continue  # shared: another thread may be using it
        if state.get("connection") is not None:
            state["connection"] = None


# routing's fast path decides once per handler state where a block can route directly, and
# keeps the answer here: (storage, handler class, mode, handler), mode being the storage where
# it is the backport's. uninstall() empties it (forget_fast_mode), or the storage it retires,
# with every wrapper of its threads, would live on until the next routing block.
FAST_MODE = [(None, None, None, None)]


def forget_fast_mode():
    FAST_MODE[0] = (None, None, None, None)


class ThreadConnections(PerThread):
    """``django.db.connections._connections`` under the backport: each thread's
    ``{alias: DatabaseWrapper}``, released when the thread ends (see release_connections).

    It acts as the calling thread's dict, so that code written for Django 1.3's shared dict
    (``connections._connections[alias] = conn``, ``alias in ...``, ``.get()``, ``.items()``,
    iteration, ``del``) keeps working, on that thread's connections only. One difference:
    ``[alias]`` of a configured alias this thread has not used yet opens its connection, as
    ``connections[alias]`` does (in Django 1.3's dict another thread may have put it there);
    ``in``, ``.get()`` and iteration show what the thread has opened.
    """

    __slots__ = ("check", "open")

    def __init__(self, check, open_wrapper=None):
        PerThread.__init__(self, dict, release_connections)
        # check(alias, value) -> the DatabaseWrapper to store, or TypeError: shared with the
        # handler's __setitem__, so both accept and refuse the same values.
        self.check = check
        # open_wrapper(alias) -> the thread's new wrapper, or KeyError for an unknown alias.
        self.open = open_wrapper

    # -- the calling thread's dict ------------------------------------------------------------

    def __getitem__(self, alias):
        try:
            return self.current()[alias]
        except KeyError:
            if self.open is None:
                raise
            return self.open(alias)

    def __setitem__(self, alias, wrapper):
        self.current()[alias] = self.check(alias, wrapper)

    def __delitem__(self, alias):
        del self.current()[alias]

    def __contains__(self, alias):
        return alias in self.current()

    def has_key(self, alias):  # Python 2's dict API, which 1.3-era code may use
        return alias in self.current()

    def __iter__(self):
        return iter(list(self.current()))

    def __len__(self):
        return len(self.current())

    def __bool__(self):
        return bool(self.current())

    __nonzero__ = __bool__

    def get(self, alias, default=None):
        return self.current().get(alias, default)

    def keys(self):
        return list(self.current().keys())

    def values(self):
        return list(self.current().values())

    def items(self):
        return list(self.current().items())

    iterkeys = __iter__

    def itervalues(self):
        return iter(self.values())

    def iteritems(self):
        return iter(self.items())

    def pop(self, alias, *default):
        return self.current().pop(alias, *default)

    def setdefault(self, alias, wrapper):
        wrappers = self.current()
        if alias not in wrappers:
            wrappers[alias] = self.check(alias, wrapper)
        return wrappers[alias]

    def clear(self):
        self.current().clear()

    def copy(self):
        return dict(self.current())

    def __repr__(self):
        return "<connlocal_shim ThreadConnections of this thread: %r>" % (self.current(),)


def check_alias_and_wrapper(unwrap):
    """The check ``connections[alias] = value`` applies: an alias string and a DatabaseWrapper,
    or a legacy reference standing for one (``unwrap(value)``, None for anything else)."""

    def check(alias, value):
        if not isinstance(alias, string_types):
            raise TypeError(
                "connlocal_shim: connection aliases are strings, not %s" % type(alias).__name__
            )
        target = unwrap(value)
        if target is None:
            raise TypeError(
                "connlocal_shim: connections[%r] can only be set to a DatabaseWrapper "
                "(such as connections['other']), not %s" % (alias, type(value).__name__)
            )
        return target

    return check


# The default of __getitem__'s second argument: it was called as handler[alias].
CALLED_AS_METHOD_NOT = object()


def thread_local_handler_class(handler_class, handler, storage, open_wrapper, check):
    """A subclass of Django's ConnectionHandler whose connections live in ``storage``, made
    for ``handler`` (``django.db.connections``) alone.

    ``open_wrapper(handler, alias)`` creates the current thread's wrapper on first use;
    ``check(alias, value)`` validates what ``connections[alias] = value`` stores.
    """
    by_ident = storage.by_ident
    namespace = vars(thread_module())

    def missing(alias):
        if get_ident_replaced():  # bound below, but something replaced it: look again
            return handler[alias]
        return open_wrapper(handler, alias)

    # The hot path of every query: the thread's identity and two dict subscripts. A static
    # method taking the alias (the class serves one handler): Python 2 then makes no bound
    # method and no argument tuple per call. Code that calls or wraps the class's function as
    # a method, ``type(connections).__getitem__(connections, alias)`` (a tool patching the
    # class, keeping the original), passes the handler first: ``explicit`` is then the alias,
    # and the handler, never a key of the table, lands in the except clause. get_ident is
    # bound once where no green library is loaded (identity.bind_get_ident); else, and from
    # the moment gevent or eventlet is first imported, it is read on every lookup from the
    # thread module's namespace, by subscript, where their monkey patch (before install or
    # after) writes it. docs/benchmarks.rst, figure 1, has what each choice costs and saves.
    def getitem_reading_get_ident(alias, explicit=CALLED_AS_METHOD_NOT):
        try:
            return by_ident[namespace["get_ident"]()][alias]
        except KeyError:
            if explicit is not CALLED_AS_METHOD_NOT:
                return getitem_reading_get_ident(explicit)
            return missing(alias)

    def getitem_bound(get_ident):
        def getitem_bound_get_ident(alias, explicit=CALLED_AS_METHOD_NOT):
            try:
                return by_ident[get_ident()][alias]
            except KeyError:
                if explicit is not CALLED_AS_METHOD_NOT:
                    return getitem_bound_get_ident(explicit)
                return missing(alias)

        return getitem_bound_get_ident

    # Types whose instances check() let through as they are (DatabaseWrapper classes, never a
    # legacy reference's proxy class nor an object proxy whose __class__ names another class):
    # __setitem__ skips check() for them, since route_connections sets aliases twice per block.
    plain_wrapper_types = set()

    class ThreadLocalConnectionHandler(handler_class):
        """django.db.connections with per-thread wrappers (connlocal_shim's backport of #17258).

        ``connections['default']`` is the current thread's wrapper; assigning or deleting an
        alias affects the current thread only::

            connections["default"] = connections["master"]   # this thread only
            del connections["default"]                        # back to settings, this thread
        """

        __getitem__ = staticmethod(getitem_reading_get_ident)

        def __setitem__(self, alias, wrapper):
            if type(alias) is not str or type(wrapper) not in plain_wrapper_types:
                wrapper = check(alias, wrapper)
                if wrapper.__class__ is type(wrapper):
                    plain_wrapper_types.add(type(wrapper))
            storage.current()[alias] = wrapper

        def __delitem__(self, alias):
            wrappers = storage.current()
            if alias in wrappers:
                del wrappers[alias]
            elif alias not in self.databases:
                from django.db.utils import ConnectionDoesNotExist

                raise ConnectionDoesNotExist(
                    "connlocal_shim: cannot delete connections[%r]: no such alias in DATABASES "
                    "(known: %s)" % (alias, ", ".join(sorted(self.databases)))
                )

    ThreadLocalConnectionHandler.__module__ = __name__

    def bind(get_ident):
        ThreadLocalConnectionHandler.__getitem__ = staticmethod(getitem_bound(get_ident))

    def rebind():
        ThreadLocalConnectionHandler.__getitem__ = staticmethod(getitem_reading_get_ident)

    bind_get_ident(bind, rebind)
    ThreadLocalConnectionHandler.connlocal_shim_rebind = staticmethod(rebind)
    return ThreadLocalConnectionHandler
