"""One connection-routing API on every Django from 1.2 to 6.1.

``route_connections(**aliases)`` re-points aliases of ``django.db.connections`` for the current
thread (and, on Django 3.0+, the current asyncio task) only; ``separate_connection(alias)`` is a
fresh private connection to a configured database; ``shared_connection(alias)`` lets other
threads use the current thread's connection for a block. On Django 1.2/1.3 they stand on the
backport (``connlocal_shim.install()``), on 1.4+ on Django's own thread-local handler.

Example: send every query of a writing view to the master database, and log through a separate
connection that commits even if the view's transaction rolls back::

    from connlocal_shim import route_connections, separate_connection

    @route_connections(default="master")
    def edit(request):
        ...
        with route_connections(default=separate_connection("master")):
            AuditLog.objects.create(action="edit")
"""
import sys
import threading

import wrapt

from connlocal_shim.compat import get_ident, string_types
from connlocal_shim import context
from connlocal_shim.context import thread_frames

ACCEPTED = (
    "an alias string (such as 'master'), a DatabaseWrapper (such as one shared by another "
    "thread), or a connection factory (such as separate_connection('master'))"
)


_modules = {}  # "db": django.db; "base": the module defining BaseDatabaseWrapper


def _handler():
    # Called twice per routed block: a module global read, not an import statement.
    try:
        return _modules["db"].connections
    except KeyError:
        import django.db

        _modules["db"] = django.db
        return django.db.connections


def _configured(handler):
    """The aliases in settings.DATABASES (``databases`` up to Django 3.1, ``settings`` since)."""
    return getattr(handler, "settings", None) or handler.databases


def check_alias(alias, handler=None):
    """Raise ConnectionDoesNotExist naming ``alias`` unless it is in settings.DATABASES."""
    handler = handler if handler is not None else _handler()
    configured = _configured(handler)
    if alias not in configured:
        from django.db.utils import ConnectionDoesNotExist

        raise ConnectionDoesNotExist(
            "connlocal_shim: alias %r is not in DATABASES (known: %s)"
            % (alias, ", ".join(sorted(configured)))
        )


def _require_thread_local(storage):
    # Before Django 1.4 connections are one dict shared by all threads: re-pointing an alias
    # would re-point it for every thread (ticket #17258). The backport fixes that.
    if isinstance(storage, dict):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "connlocal_shim: connections are shared by all threads on this Django; add "
            "'connlocal_shim' to INSTALLED_APPS or call connlocal_shim.install() (in wsgi.py) "
            "before routing them"
        )


def is_wrapper(value):
    """Whether ``value`` is a DatabaseWrapper (or a legacy reference standing for one)."""
    module = _modules.get("base")
    if module is None:
        from connlocal_shim.features import _find_base_wrapper

        base = _find_base_wrapper()
        if base is None:
            return False
        module = _modules["base"] = sys.modules[base.__module__]
    # Read from the module each time: the backport rebinds the name to the rebuilt class.
    return isinstance(value, module.BaseDatabaseWrapper)


def new_wrapper(alias):
    """A fresh DatabaseWrapper for ``alias``, made as Django makes the thread's own one."""
    handler = _handler()
    check_alias(alias, handler)
    create = getattr(handler, "create_connection", None)
    if create is not None:  # Django 3.2+ (BaseConnectionHandler)
        return create(alias)
    handler.ensure_defaults(alias)
    prepare = getattr(handler, "prepare_test_settings", None)  # Django 1.11+
    if prepare is not None:
        prepare(alias)
    from django.db.utils import load_backend

    settings_dict = handler.databases[alias]
    return load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)


def share(wrapper):
    """Let other threads use ``wrapper``: a counter since Django 2.2 (ticket #29585), the
    ``allow_thread_sharing`` attribute of Django 1.4 (and of the backport) before."""
    if hasattr(wrapper, "inc_thread_sharing"):
        wrapper.inc_thread_sharing()
        return None
    previous = wrapper.allow_thread_sharing
    wrapper.allow_thread_sharing = True
    return previous


def unshare(wrapper, previous):
    if hasattr(wrapper, "dec_thread_sharing"):
        wrapper.dec_thread_sharing()
    else:
        wrapper.allow_thread_sharing = previous


def in_transaction(wrapper):
    """Whether ``wrapper`` is inside a transaction or atomic block that is still open."""
    if getattr(wrapper, "in_atomic_block", False):  # Django 1.6+
        return True
    get_autocommit = getattr(wrapper, "get_autocommit", None)
    if get_autocommit is not None:  # Django 1.6+: set_autocommit(False) opens one too
        return wrapper.connection is not None and not get_autocommit()
    if getattr(wrapper, "transaction_state", None):  # Django 1.3-1.5: managed blocks
        return True
    tables = _transaction_tables()  # Django 1.2: kept per thread and alias
    if tables:
        state = tables[0]
        return bool(state.get(get_ident(), {}).get(wrapper.alias))
    return False


def close_private(wrapper):
    """Close a wrapper nobody else uses, including an in-memory sqlite one (Django ignores
    close() there, to protect the thread's own in-memory database)."""
    wrapper.close()
    connection = getattr(wrapper, "connection", None)
    if connection is not None:
        connection.close()
        wrapper.connection = None


def _alias_string(alias, api):
    """``alias``, or a TypeError naming ``api()`` and what it got instead of an alias string."""
    if not isinstance(alias, string_types):
        raise TypeError(
            "connlocal_shim: %s() takes an alias string, not %s" % (api, type(alias).__name__)
        )
    return alias


class _ThreadStacks(object):
    """One list per thread: what each thread's nested ``with`` blocks of one object opened."""

    def __init__(self):
        self._local = threading.local()

    def push(self, item):
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(item)

    def pop(self):
        return self._local.stack.pop()


# -- factories ----------------------------------------------------------------------------------

class ConnectionFactory(object):
    """What route_connections calls on entry to get a wrapper, and on exit to dispose of it."""

    def create(self):
        raise NotImplementedError

    def dispose(self, wrapper):
        pass


class SeparateConnection(ConnectionFactory):
    """A fresh, private DatabaseWrapper to the database of ``alias``; see separate_connection."""

    def __init__(self, alias):
        self.alias = _alias_string(alias, "separate_connection")
        self._opened = _ThreadStacks()

    def create(self):
        return new_wrapper(self.alias)

    def dispose(self, wrapper):
        close_private(wrapper)

    def __enter__(self):
        wrapper = self.create()
        self._opened.push(wrapper)
        return wrapper

    def __exit__(self, *exc_info):
        self.dispose(self._opened.pop())
        return False

    def __repr__(self):
        return "separate_connection(%r)" % (self.alias,)


def separate_connection(alias="default"):
    """A fresh, private connection to the database of ``alias``, opened on first query and
    closed when the block that created it ends.

    Its typical use: an audit write that must commit even if the surrounding transaction
    rolls back::

        with route_connections(default=separate_connection("default")):
            AuditLog.objects.create(action="refund")   # its own connection: commits now

        with separate_connection("master") as wrapper:  # or on its own
            wrapper.cursor().execute("SELECT 1")
    """
    return SeparateConnection(alias)


class SharedConnection(object):
    """See shared_connection."""

    def __init__(self, alias):
        self.alias = _alias_string(alias, "shared_connection")
        self._shared = _ThreadStacks()

    def __enter__(self):
        handler = _handler()
        check_alias(self.alias, handler)
        wrapper = handler[self.alias]
        previous = share(wrapper)
        self._shared.push((wrapper, previous))
        return wrapper

    def __exit__(self, *exc_info):
        wrapper, previous = self._shared.pop()
        unshare(wrapper, previous)
        return False

    def __repr__(self):
        return "shared_connection(%r)" % (self.alias,)


def shared_connection(alias="default"):
    """Make the current thread's connection for ``alias`` usable by other threads for the
    block, and yield it (Django 1.4's ``allow_thread_sharing``; ``inc_thread_sharing()`` on
    Django 2.2+)::

        with shared_connection("default") as wrapper:
            worker = threading.Thread(target=serve, args=(wrapper,))
            worker.start()
            ...
            worker.join()

        def serve(wrapper):
            with route_connections(default=wrapper):
                ...  # this thread's queries use the test thread's connection
    """
    return SharedConnection(alias)


# -- route_connections ----------------------------------------------------------------------------

class _Frame(object):
    """What one entered block changed and must undo."""

    __slots__ = ("saved", "created", "used", "transaction_states", "token", "previous_routes",
                 "previous_frames")

    def __init__(self):
        self.saved = []  # (alias, wrapper it pointed to): per-thread routing
        self.created = []  # (factory, wrapper): disposed of on exit
        self.used = []  # what the block routed to, for close_connections
        self.transaction_states = []  # Django 1.2: (alias, stashed transaction state)
        self.token = None  # per-context routing: the ContextVar token of the overlay
        self.previous_routes = None
        self.previous_frames = None


def _transaction_tables():
    """Django 1.2's module-level ``{thread: {alias: ...}}`` dicts of django.db.transaction
    (never rebound): ``state``, ``savepoint_state`` and ``dirty``, in that order; or () on a
    Django that keeps transaction state in the wrappers."""
    tables = _modules.get("transaction tables")
    if tables is None:
        from django.db import transaction

        names = ("state", "savepoint_state", "dirty")
        tables = tuple(getattr(transaction, name, None) for name in names)
        if not all(isinstance(table, dict) for table in tables):
            tables = ()
        _modules["transaction tables"] = tables
    return tables


def _stash_transaction_state(alias):
    """Django 1.2 keeps transaction state in django.db.transaction per thread and *alias*, not
    per wrapper: a re-pointed alias starts the block with none, as a fresh wrapper would."""
    tables = _transaction_tables()
    if not tables:
        return None
    ident = get_ident()
    stashed = []
    for table in tables:
        per_alias = table.setdefault(ident, {})
        stashed.append((per_alias, alias in per_alias, per_alias.pop(alias, None)))
    return stashed


def _restore_transaction_state(alias, stashed):
    for per_alias, present, value in stashed:
        per_alias.pop(alias, None)
        if present:
            per_alias[alias] = value


def _routes_per_context(storage):
    """Whether routing must follow asyncio tasks: Django keeps connections (``storage``) in
    asgiref's Local (Django 3.0+), and contextvars exist (Python 3.7+). Enables the handler's
    overlay."""
    if context.ROUTES is None or isinstance(storage, (dict, threading.local)):
        return False
    from connlocal_shim.backport import context_routing_enabled, enable_context_routing

    if not context_routing_enabled():
        enable_context_routing()
    return True


class RouteConnections(object):
    """See route_connections: one object, both a context manager and a decorator."""

    def __init__(self, close_connections=False, **aliases):
        for alias, value in aliases.items():
            if not (
                isinstance(value, string_types)
                or isinstance(value, ConnectionFactory)
                or callable(value)
                or (hasattr(value, "cursor") and hasattr(value, "settings_dict"))
            ):
                raise TypeError(
                    "connlocal_shim: route_connections(%s=...) got %s; it accepts %s"
                    % (alias, type(value).__name__, ACCEPTED)
                )
        self.close_connections = bool(close_connections)
        self.aliases = sorted(aliases.items())

    def __repr__(self):
        parts = ["%s=%r" % item for item in self.aliases]
        if self.close_connections:
            parts.append("close_connections=True")
        return "route_connections(%s)" % ", ".join(parts)

    # -- resolving ---------------------------------------------------------------------------

    def _resolve(self, handler, own, frame, shareable):
        """Every (alias, target) of the block, before anything is re-pointed. ``own(name)``
        gives the target an alias string stands for; factories' wrappers are made shareable
        where the block's queries may run in other threads of its task."""
        resolved = []
        configured = _configured(handler)
        for alias, value in self.aliases:
            if alias not in configured:
                check_alias(alias, handler)  # raises
            if isinstance(value, string_types):
                if value not in configured:
                    check_alias(value, handler)  # raises
                target = own(value)
            elif isinstance(value, ConnectionFactory):
                target = value.create()
                sharing = (share(target),) if shareable else None
                frame.created.append((value, target, sharing))
            elif is_wrapper(value):
                target = value
            elif callable(value):
                target = value()
                if not is_wrapper(target):
                    raise TypeError(
                        "connlocal_shim: route_connections(%s=%r) called it and got %s, not a "
                        "DatabaseWrapper" % (alias, value, type(target).__name__)
                    )
            else:
                raise TypeError(
                    "connlocal_shim: route_connections(%s=...) got %s; it accepts %s"
                    % (alias, type(value).__name__, ACCEPTED)
                )
            resolved.append((alias, target))
        return resolved

    # -- entering and leaving ---------------------------------------------------------------

    def enter(self):
        """Re-point the aliases; return {alias: wrapper} of what they now point to."""
        handler = _handler()
        storage = vars(handler).get("_connections")
        _require_thread_local(storage)
        frame = _Frame()
        try:
            if _routes_per_context(storage):
                return self._enter_context(handler, frame)
            return self._enter_thread(handler, frame)
        except BaseException:
            self._dispose(frame)
            raise

    def _enter_thread(self, handler, frame):
        frames = thread_frames()

        def own(alias):  # what it was before any block of this thread re-pointed it
            for outer in frames:
                for target, previous in outer.saved:
                    if target == alias:
                        return previous
            return handler[alias]

        resolved = self._resolve(handler, own, frame, shareable=False)
        # Every value is resolved: now re-point, remembering what each alias pointed to.
        for alias, wrapper in resolved:
            frame.saved.append((alias, handler[alias]))
            stashed = _stash_transaction_state(alias)
            if stashed is not None:
                frame.transaction_states.append((alias, stashed))
            handler[alias] = wrapper
            frame.used.append(wrapper)
        frames.append(frame)
        return dict(resolved)

    def _enter_context(self, handler, frame):
        resolved = self._resolve(handler, context.OwnAlias, frame, shareable=True)
        frame.previous_routes = context.ROUTES.get()
        routes = dict(frame.previous_routes or {})
        routes.update(resolved)
        frame.used = [target for _, target in resolved]
        frame.token = context.ROUTES.set(routes)
        frame.previous_frames = context.CONTEXT_FRAMES.get()
        context.CONTEXT_FRAMES.set(frame.previous_frames + (frame,))
        return dict((alias, handler[alias]) for alias, _ in resolved)

    def exit(self):
        """Point every alias back where it pointed before enter(), in reverse order."""
        self.finish(self.leave())

    def leave(self):
        """The first half of exit(): undo the re-pointing; return the frame to finish."""
        frames = context.CONTEXT_FRAMES.get() if context.CONTEXT_FRAMES is not None else ()
        if frames:
            frame = frames[-1]
            try:
                context.ROUTES.reset(frame.token)
            except ValueError:  # left from another context than the one that entered
                context.ROUTES.set(frame.previous_routes)
            context.CONTEXT_FRAMES.set(frame.previous_frames)
            return frame
        thread_stack = thread_frames()
        if not thread_stack:
            raise RuntimeError("connlocal_shim: route_connections exited more often than entered")
        frame = thread_stack.pop()
        handler = _handler()
        for alias, previous in reversed(frame.saved):
            handler[alias] = previous
        for alias, stashed in reversed(frame.transaction_states):
            _restore_transaction_state(alias, stashed)
        return frame

    def finish(self, frame):
        """The second half of exit(): close what the block used (close_connections) and what
        its factories made. It talks to the database: async code runs it in sync_to_async."""
        try:
            if self.close_connections:
                self._close_used(frame)
        finally:
            self._dispose(frame)

    def _close_used(self, frame):
        handler = _handler()
        created = set(id(created_wrapper) for _, created_wrapper, _ in frame.created)
        for target in frame.used:
            wrapper = handler.own(target.alias) if type(target) is context.OwnAlias else target
            if id(wrapper) in created:
                continue  # disposed of by its factory
            if getattr(wrapper, "_thread_ident", get_ident()) != get_ident():
                continue  # another thread's shared connection: not ours to close
            if in_transaction(wrapper):
                continue  # left open: the transaction that holds it is not this block's
            wrapper.close()

    def _dispose(self, frame):
        for factory, wrapper, sharing in reversed(frame.created):
            try:
                factory.dispose(wrapper)  # while still shared: it may run in another thread
            finally:
                if sharing is not None:
                    unshare(wrapper, sharing[0])
        del frame.created[:]

    def __enter__(self):
        return self.enter()

    def __exit__(self, exc_type, exc_value, traceback):
        self.exit()
        return False

    # -- as a decorator ---------------------------------------------------------------------

    def __call__(self, func):
        if _aio is not None and _aio.is_coroutine_function(func):
            return _aio.route_coroutine_function(self, func)

        @wrapt.decorator
        def routed(wrapped, instance, args, kwargs):
            self.enter()
            try:
                return wrapped(*args, **kwargs)
            finally:
                self.exit()

        return routed(func)


if sys.version_info >= (3, 5):
    from connlocal_shim import _aio

    RouteConnections.__aenter__ = _aio.aenter
    RouteConnections.__aexit__ = _aio.aexit
else:  # Python 2 cannot parse async def
    _aio = None


def route_connections(close_connections=False, **aliases):
    """Re-point database aliases for the current thread (or async task) only, for a block or a
    function call; a decorator and a context manager (``with`` and ``async with``).

    Each keyword names an alias to re-point; its value is:

    - an alias string: the current thread's own connection to that database as configured in
      settings, never one an outer block re-pointed;
    - a DatabaseWrapper, for example one another thread shares with ``shared_connection()``;
    - a connection factory such as ``separate_connection("master")``, called on entry, whose
      connection is closed on exit.

    All values are resolved before any alias is re-pointed, so aliases can be swapped::

        with route_connections(default="other", other="default"):
            ...

    On exit, normal or by exception, every alias points where it pointed before.
    ``close_connections=True`` also closes the connections the block used, except one still
    inside a transaction or atomic block (it stays open for whoever opened that transaction)
    and one that belongs to another thread. An unknown alias raises ConnectionDoesNotExist on
    entry, and nothing is re-pointed::

        @route_connections(default="master")
        def edit(request):
            ...
    """
    return RouteConnections(close_connections=close_connections, **aliases)
