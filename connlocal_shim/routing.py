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
import inspect
import logging
import sys
import types

import wrapt

from connlocal_shim import context
from connlocal_shim.compat import reraise, string_types
from connlocal_shim.context import THREAD_FRAMES
from connlocal_shim.handler import FAST_MODE, ThreadConnections
from connlocal_shim.identity import PerThread, get_ident, thread_module
from connlocal_shim.observe import OBSERVING
from connlocal_shim.wrappers import PROXY_MARK

_thread = thread_module()  # its get_ident is read at each call (gevent/eventlet may patch it)
_ROUTES, _FRAMES = context.ROUTES, context.FRAMES
_THREAD_FRAME_LISTS = THREAD_FRAMES.by_ident  # {identity: the thread's frames}

logger = logging.getLogger("connlocal_shim")

ACCEPTED = (
    "an alias string (such as 'master'), a DatabaseWrapper (such as one shared by another "
    "thread), django.db.connection, or a connection factory (such as "
    "separate_connection('master'))"
)

# Looked up once, on first use: "db" (django.db), "base" (the module defining
# BaseDatabaseWrapper, whose name is read from it each time: the backport rebinds it),
# "transaction" (django.db.transaction), "proxies" (Django's classes of django.db.connection).
_modules = {}


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
    # would re-point it for every thread (ticket #17258). The backport fixes that, except in
    # observe mode, which keeps Django 1.3's behaviour (observe.py).
    if OBSERVING[0]:
        _refuse_while_observing("route_connections")
    if isinstance(storage, dict):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "connlocal_shim: connections are shared by all threads on this Django; add "
            "'connlocal_shim' to INSTALLED_APPS or call connlocal_shim.install() (in wsgi.py) "
            "before routing them"
        )


def _refuse_while_observing(api):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "connlocal_shim: %s() needs thread-local connections, and observe mode keeps them "
        "process-wide, as Django 1.3 does; switch to enforce mode first "
        "(connlocal_shim.set_mode('enforce'), or CONNLOCAL_SHIM['MODE'] = 'enforce')" % api
    )


def _base_wrapper():
    """BaseDatabaseWrapper as its module names it now (the backport rebinds the name to the
    rebuilt class), or None where there is none."""
    module = _modules.get("base")
    if module is None:
        from connlocal_shim.features import _find_base_wrapper

        base = _find_base_wrapper()
        if base is None:
            return None
        module = _modules["base"] = sys.modules[base.__module__]
    return module.BaseDatabaseWrapper


def is_wrapper(value):
    """Whether ``value`` is a DatabaseWrapper (or a legacy reference standing for one)."""
    base = _base_wrapper()
    return base is not None and isinstance(value, base)


def _is_plain_wrapper(value):
    """Whether ``value``'s own type is a DatabaseWrapper class: no proxy, nothing that claims a
    class through ``__class__``. Reads no ``__class__`` (on the backport's rebuilt classes that
    is a Python-level descriptor)."""
    module = _modules.get("base")  # _base_wrapper(), without the call once it is known
    base = module.BaseDatabaseWrapper if module is not None else _base_wrapper()
    cls = type(value)
    return base is not None and issubclass(cls, base) and PROXY_MARK not in cls.__dict__


def _django_proxy_classes():
    """Django's classes of ``django.db.connection``: DefaultConnectionProxy (Django 1.4-3.1)
    and ConnectionProxy (Django 3.2+, also used for caches)."""
    classes = _modules.get("proxies")
    if classes is None:
        import django.db

        found = [getattr(django.db, "DefaultConnectionProxy", None)]
        try:
            from django.utils.connection import ConnectionProxy
        except ImportError:
            pass
        else:
            found.append(ConnectionProxy)
        classes = _modules["proxies"] = tuple(cls for cls in found if isinstance(cls, type))
    return classes


def _proxied_alias(proxy, handler):
    """The alias a Django connection proxy stands for (raises TypeError for one of another
    handler, such as django.core.cache.cache)."""
    state = vars(proxy)
    if "_alias" not in state:  # DefaultConnectionProxy: always the default alias
        from django.db import DEFAULT_DB_ALIAS

        return DEFAULT_DB_ALIAS
    if state.get("_connections") is not handler:
        raise TypeError(
            "connlocal_shim: route_connections got a proxy of %r, not of django.db.connections"
            % (state.get("_connections"),)
        )
    return state["_alias"]


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
    transaction = _modules.get("transaction")
    if transaction is None:
        from django.db import transaction

        _modules["transaction"] = transaction
    # Django 1.2 keeps the state in django.db.transaction; under the backport its tables keep
    # it with the wrapper an alias serves (transactions.py).
    from connlocal_shim.transactions import TransactionTable, managed_stack

    table = getattr(transaction, "state", None)
    if isinstance(table, TransactionTable):
        return bool(managed_stack(table.original, wrapper))
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
        self._opened = PerThread(list)  # each thread's wrappers of nested with-blocks

    def create(self):
        return new_wrapper(self.alias)

    def dispose(self, wrapper):
        close_private(wrapper)

    def __enter__(self):
        wrapper = self.create()
        self._opened.current().append(wrapper)
        return wrapper

    def __exit__(self, *exc_info):
        self.dispose(self._opened.current().pop())
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
        self._shared = PerThread(list)  # each thread's (wrapper, previous) of nested blocks

    def __enter__(self):
        if OBSERVING[0]:
            _refuse_while_observing("shared_connection")
        handler = _handler()
        check_alias(self.alias, handler)
        wrapper = handler[self.alias]
        previous = share(wrapper)
        self._shared.current().append((wrapper, previous))
        return wrapper

    def __exit__(self, *exc_info):
        wrapper, previous = self._shared.current().pop()
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


# -- what a value stands for --------------------------------------------------------------------

ALIAS, FACTORY, WRAPPER, PROXY, CALLABLE = "alias", "factory", "wrapper", "proxy", "callable"


def value_kind(alias, value):
    """What route_connections(alias=value) routes to, or TypeError saying what it accepts.
    The one check of a value: the constructor makes it, entering relies on it."""
    # A wrapper first, by its type: isinstance() would read its __class__, a Python-level
    # descriptor on the backport's rebuilt classes, for each class it is not.
    if _is_plain_wrapper(value):
        return WRAPPER
    if isinstance(value, string_types):
        return ALIAS
    if isinstance(value, ConnectionFactory):
        return FACTORY
    if is_wrapper(value):  # also the backport's legacy references (django.db.connection)
        return WRAPPER
    if isinstance(value, _django_proxy_classes()):  # django.db.connection on Django 1.4+
        return PROXY
    if callable(value):
        return CALLABLE
    raise TypeError(
        "connlocal_shim: route_connections(%s=...) got %s; it accepts %s"
        % (alias, type(value).__name__, ACCEPTED)
    )


# -- route_connections ----------------------------------------------------------------------------

class _Frame(object):
    """One entered block: what it routes to, what it changed, and what it made."""

    __slots__ = ("block", "per_context", "resolved", "saved", "created", "ident",
                 "previous_routes", "active")

    def __init__(self, block, per_context, resolved=None, saved=None, ident=None,
                 previous_routes=None):
        self.block = block
        self.per_context = per_context  # routed per asyncio task (Django 3.0+), or per thread
        # (alias, target): wrappers, or context.OwnAlias per context
        self.resolved = [] if resolved is None else resolved
        # per thread: [alias, what it pointed to before], updated on splices
        self.saved = [] if saved is None else saved
        self.created = []  # (factory, wrapper, sharing): disposed of at the end
        self.ident = ident  # per thread: the thread that resolved the alias strings
        self.previous_routes = previous_routes  # per context: the overlay below this block
        # its routing is in place (a generator's frame comes and goes)
        self.active = resolved is not None


def _index(frames, frame):
    for index in range(len(frames) - 1, -1, -1):
        if frames[index] is frame:
            return index
    return None


def _own(handler, frames, alias):
    """The thread's own connection to ``alias``: what it pointed to before any block of the
    thread re-pointed it."""
    for frame in frames:
        for saved_alias, previous in frame.saved:
            if saved_alias == alias:
                return previous
    return handler[alias]


def _routes_per_context(storage):
    """Whether routing must follow asyncio tasks: Django keeps connections (``storage``) in
    asgiref's Local (Django 3.0+), and contextvars exist (Python 3.7+). Enables the handler's
    overlay."""
    if context.ROUTES is None or not type(storage).__module__.startswith("asgiref."):
        return False
    from connlocal_shim.backport import context_routing_enabled, enable_context_routing

    if not context_routing_enabled():
        enable_context_routing()
    return True


_PER_CONTEXT = "per context"


def _fast_mode():
    """(handler, where a simple block can route directly): the backport's storage, or
    _PER_CONTEXT where the overlay is in place, or None elsewhere (Django 1.4-2.2's own
    threading.local, the backport not installed...). Decided once per handler state."""
    try:  # _handler(), without the call
        handler = _modules["db"].connections
    except KeyError:
        handler = _handler()
    handler_class = handler.__class__  # read first: a class swapped after it is seen below
    storage = handler.__dict__.get("_connections")
    cached = FAST_MODE[0]
    if cached[0] is storage and cached[1] is handler_class and cached[3] is handler:
        return handler, cached[2]
    if getattr(handler_class, "connlocal_shim_observing", False):
        mode = None  # observe mode: the general path refuses to route
    elif isinstance(storage, ThreadConnections):
        mode = storage
    elif getattr(type(handler), "own", None) is not None and type(handler).__module__ == (
        context.__name__
    ):
        mode = _PER_CONTEXT
    else:
        mode = None
    FAST_MODE[0] = (storage, handler_class, mode, handler)
    return handler, mode



def _thread_frames():
    """The current thread's frames, each a _Frame: the compact frames of the fast path are
    made into ones, in place."""
    frames = THREAD_FRAMES.current()
    for index, frame in enumerate(frames):
        if type(frame) is tuple:
            block, saved, wrappers, routed, ident = frame
            frames[index] = _Frame(
                block, False, list(routed.items()), [list(entry) for entry in saved], ident
            )
    return frames


def _context_frames():
    """The context's frames, each a _Frame: where the fast path left compact frames, the
    overlay is made again, level by level, with _Frames, so that they keep their identity."""
    routes = context.ROUTES.get()
    frames = context.context_frames(routes)
    if not any(type(frame) is tuple for frame in frames):
        return frames
    first = frames[0]
    rebuilt = first[1] if type(first) is tuple else first.previous_routes
    full = []
    for frame in frames:
        if type(frame) is tuple:
            block = frame[0]
            frame = _Frame(block, True, list(block._overlay.items()))
        frame.previous_routes = rebuilt
        rebuilt = _merge(rebuilt, frame.resolved)
        rebuilt[_FRAMES] = frame
        full.append(frame)
    context.ROUTES.set(rebuilt)
    return tuple(full)


class _RoutedTo(object):
    """What a block entered per context returns: {alias: the wrapper it points to}, looked
    up when read (in the thread that entered, the same as at entry)."""

    __slots__ = ("_handler", "_resolved")

    def __init__(self, handler, resolved):
        self._handler = handler
        self._resolved = resolved

    def _wrapper(self, target):
        if type(target) is context.OwnAlias:
            return self._handler.own(target.alias)
        return target

    def __getitem__(self, alias):
        for name, target in self._resolved:
            if name == alias:
                return self._wrapper(target)
        raise KeyError(alias)

    def get(self, alias, default=None):
        try:
            return self[alias]
        except KeyError:
            return default

    def __contains__(self, alias):
        return any(name == alias for name, _ in self._resolved)

    def __iter__(self):
        return iter([name for name, _ in self._resolved])

    def __len__(self):
        return len(self._resolved)

    def keys(self):
        return [name for name, _ in self._resolved]

    def values(self):
        return [self._wrapper(target) for _, target in self._resolved]

    def items(self):
        return [(name, self._wrapper(target)) for name, target in self._resolved]

    def __eq__(self, other):
        return dict(self.items()) == other

    def __ne__(self, other):
        return not self == other

    def __repr__(self):
        return repr(dict(self.items()))


def _merge(routes, resolved):
    merged = dict(routes or {})
    merged.update(resolved)
    merged.pop(_FRAMES, None)
    return merged


def _report(errors, body_failed):
    """Failures while leaving a block (closing, disposing): raised if the block itself
    succeeded (the first; the others logged), logged if it raised (its exception goes on)."""
    if not errors:
        return
    first = None if body_failed else errors[0]
    for what, exc_info in errors[0 if body_failed else 1:]:
        logger.error(
            "connlocal_shim: %s failed while leaving route_connections%s", what,
            "; the block's own exception goes on" if body_failed else "",
            exc_info=exc_info,
        )
    if first is not None:
        reraise(*first[1])


class RouteConnections(object):
    """See route_connections: one object, both a context manager and a decorator."""

    def __init__(self, close_connections=False, **aliases):
        self.aliases = sorted(aliases.items())
        self.kinds = [value_kind(alias, value) for alias, value in self.aliases]
        self.close_connections = bool(close_connections)
        # Blocks of alias strings and wrappers only, that close nothing, take the fast path of
        # `with` (see __enter__): nothing to make or dispose of, every target known up front.
        self._simple = not self.close_connections and all(
            kind is ALIAS or kind is WRAPPER for kind in self.kinds
        )
        self._checked = None  # the handler whose DATABASES the aliases were found in
        self._plan = None
        self._one = None  # the plan's only step, where it has one
        self._overlay = None  # per context: the block's {alias: target}, made once
        self._solo_routes = None  # per context: the overlay of this block alone, with its frame
        self._kept_for = None  # the wrapper that keeps this block (see _wrapper_block)
        self._routed_to = None  # per context: what `with` gives (looked up when read)
        self._overlay_for = None  # the handler the overlay was made for, and its class
        self._overlay_class = None

    def __repr__(self):
        parts = ["%s=%r" % item for item in self.aliases]
        if self.close_connections:
            parts.append("close_connections=True")
        return "route_connections(%s)" % ", ".join(parts)

    # -- resolving ---------------------------------------------------------------------------

    def _resolve(self, handler, frame, only_aliases=False):
        """Every (alias, target) of the block, before anything is re-pointed. An alias string
        stands for the thread's own connection; factories' wrappers are made shareable where
        the block's queries may run in other threads of its task. ``only_aliases``: resolve
        the alias strings again (a generator resumed in another thread), keep the rest."""
        configured = _configured(handler)
        per_context = frame.per_context
        frames = None if per_context else _thread_frames()
        previous = dict(frame.resolved)
        resolved = []
        for (alias, value), kind in zip(self.aliases, self.kinds):
            if alias not in configured:
                check_alias(alias, handler)  # raises
            if only_aliases and kind is not ALIAS:
                target = previous[alias]
            elif kind is ALIAS:
                if value not in configured:
                    check_alias(value, handler)  # raises
                target = context.OwnAlias(value) if per_context else _own(handler, frames, value)
            elif kind is FACTORY:
                target = value.create()
                sharing = (share(target),) if per_context else None
                frame.created.append((value, target, sharing))
            elif kind is WRAPPER:
                target = value
            elif kind is PROXY:
                target = handler[_proxied_alias(value, handler)]
            else:
                target = value()
                if not is_wrapper(target):
                    raise TypeError(
                        "connlocal_shim: route_connections(%s=%r) called it and got %s, not a "
                        "DatabaseWrapper" % (alias, value, type(target).__name__)
                    )
            resolved.append((alias, target))
        frame.resolved = resolved
        frame.ident = get_ident()

    # -- entering and leaving ---------------------------------------------------------------

    def enter(self):
        """Re-point the aliases; return {alias: wrapper} of what they now point to."""
        frame = self.open()
        handler = _handler()
        return dict((alias, handler[alias]) for alias, _ in frame.resolved)

    def open(self):
        """Resolve and re-point; return the frame (for suspend(), point(), leave()...)."""
        handler = _handler()
        storage = vars(handler).get("_connections")
        _require_thread_local(storage)
        frame = _Frame(self, _routes_per_context(storage))
        try:
            self._resolve(handler, frame)
            self.point(frame)
        except BaseException:
            _report(self._dispose(frame), body_failed=True)
            raise
        return frame

    def point(self, frame):
        """Put the frame's routing in place, on top of what is routed now."""
        if frame.per_context:
            routes = frame.previous_routes = context.ROUTES.get()
            merged = _merge(routes, frame.resolved)
            merged[context.FRAMES] = frame
            context.ROUTES.set(merged)
        else:
            handler = _handler()
            frames = _thread_frames()
            if frame.ident != get_ident():  # a generator resumed in another thread
                self._resolve(handler, frame, only_aliases=True)
            saved = []
            try:
                for alias, target in frame.resolved:
                    saved.append([alias, handler[alias]])
                    handler[alias] = target
            except BaseException:
                for alias, previous in reversed(saved):
                    handler[alias] = previous
                raise
            frame.saved = saved
            frames.append(frame)
        frame.active = True

    def suspend(self, frame):
        """Take the frame's routing away, wherever the frame is among those of its thread (or
        context): each alias gets back what it pointed to before the block, or, where a later
        block re-pointed it too, that block will restore it when it ends."""
        if frame.per_context:
            frames = _context_frames()
            index = self._position(frames, frame, "context (asyncio task)")
            routes = frame.previous_routes
            for later in frames[index + 1:]:  # blocks entered after it, still open
                later.previous_routes = routes
                routes = _merge(routes, later.resolved)
                routes[context.FRAMES] = later
            context.ROUTES.set(routes)
        else:
            frames = _thread_frames()
            index = self._position(frames, frame, "thread")
            handler = _handler()
            above = frames[index + 1:]
            for alias, previous in reversed(frame.saved):
                for later in above:  # the nearest later block that re-pointed alias too
                    entry = next((entry for entry in later.saved if entry[0] == alias), None)
                    if entry is not None:
                        entry[1] = previous
                        break
                else:
                    handler[alias] = previous
            del frames[index]
        frame.active = False

    def _position(self, frames, frame, where):
        """Where ``frame`` is in ``frames``, or RuntimeError: it was left elsewhere."""
        index = _index(frames, frame)
        if index is None:
            raise RuntimeError(
                "connlocal_shim: %r was left in another %s than the one that entered it; "
                "routing there is unchanged" % (self, where)
            )
        return index

    def exit(self, body_failed=False):
        """Point every alias back where it pointed before enter(), in reverse order."""
        self.close_frame(self.leave(), body_failed)

    def close_frame(self, frame, body_failed=False):
        """Take the frame's routing away (if in place) and finish it."""
        if frame.active:
            self.suspend(frame)
        self.finish(frame, body_failed)

    def leave(self):
        """The first half of exit(): undo the re-pointing of this block's innermost open
        frame; return the frame to finish."""
        frame = self._innermost_frame()
        self.suspend(frame)
        return frame

    def _innermost_frame(self):
        if context.ROUTES is not None:
            for frame in reversed(_context_frames()):
                if frame.block is self:
                    return frame
        frames = _thread_frames() if THREAD_FRAMES.peek() else ()
        for frame in reversed(frames):
            if frame.block is self:
                return frame
        raise RuntimeError(
            "connlocal_shim: %r exited more often than entered (or in another thread or "
            "task than the one that entered it)" % self
        )

    def finish(self, frame, body_failed=False):
        """The second half of exit(): close what the block used (close_connections) and what
        its factories made, all of it whatever fails; a failure is raised if the block
        succeeded, logged if it raised. It talks to the database: async code runs it in
        sync_to_async."""
        errors = self._close_used(frame) if self.close_connections else []
        errors.extend(self._dispose(frame))
        _report(errors, body_failed)

    def _close_used(self, frame):
        handler = _handler()
        created = set(id(created_wrapper) for _, created_wrapper, _ in frame.created)
        errors = []
        for _, target in frame.resolved:
            wrapper = handler.own(target.alias) if type(target) is context.OwnAlias else target
            if id(wrapper) in created:
                continue  # disposed of by its factory
            if getattr(wrapper, "_thread_ident", get_ident()) != get_ident():
                continue  # another thread's shared connection: not ours to close
            if in_transaction(wrapper):
                continue  # left open: the transaction that holds it is not this block's
            try:
                wrapper.close()
            except Exception:
                errors.append(("closing connections[%r]" % wrapper.alias, sys.exc_info()))
        return errors

    def _dispose(self, frame):
        errors = []
        for factory, wrapper, sharing in reversed(frame.created):
            try:
                factory.dispose(wrapper)  # while still shared: it may run in another thread
            except Exception:
                errors.append(("disposing of the connection of %r" % (factory,), sys.exc_info()))
            if sharing is not None:
                try:
                    unshare(wrapper, sharing[0])
                except Exception:
                    errors.append(("unsharing the connection of %r" % (factory,),
                                   sys.exc_info()))
        del frame.created[:]
        return errors

    # -- the fast path of `with` ---------------------------------------------------------
    # A simple block (alias strings and wrappers) entered where the backport's storage holds
    # connections (Django 1.2/1.3), or where Django 3.0+ routes per context, and not nested in
    # another block of the thread: the same frame as open() makes, made with a few dict
    # operations; the general path handles everything else. README's "Benchmarks" has what
    # each costs.

    def __enter__(self):
        handler = self._overlay_for
        if handler is not None and handler.__class__ is self._overlay_class:
            # Per context, the overlay made for this block: _enter_context_fast(), inline.
            routes = _ROUTES.get()
            if routes is None:  # no block open in the context: the overlay made for that
                _ROUTES.set(self._solo_routes)
                return self._routed_to
            if routes:
                merged = dict(routes)
                merged.update(self._overlay)
            else:
                merged = self._overlay.copy()
            merged[_FRAMES] = (self, routes)
            _ROUTES.set(merged)
            return self._routed_to
        if self._simple:
            # _fast_mode(), without the call while nothing changed
            # (install, uninstall and the overlay all change the handler's class)
            cached = FAST_MODE[0]
            handler = cached[3]
            if handler is None or handler.__class__ is not cached[1]:
                handler, mode = _fast_mode()
            else:
                mode = cached[2]
            if mode is _PER_CONTEXT:
                return self._enter_context_fast(handler)
            if mode is not None:
                # The backport's storage: written directly, as its __setitem__ would. Dict
                # subscripts in try blocks, not .get(): on Python 2 each method call costs
                # what several subscripts do.
                ident = _thread.get_ident()
                try:
                    wrappers = mode.by_ident[ident] if (
                        handler.__dict__["_connections"] is mode) else None
                except KeyError:
                    wrappers = None  # the thread's first use, or the storage replaced
                try:
                    frames = _THREAD_FRAME_LISTS[ident]
                except KeyError:
                    frames = None
                plan = self._plan if self._checked is handler else self._fast_plan(handler)
                if wrappers is not None and not frames and plan is not None:
                    one = self._one
                    if one is not None:  # one alias: no loop
                        alias, value, is_alias = one
                        if is_alias:
                            try:
                                target = wrappers[value]
                            except KeyError:
                                target = handler[value]
                        else:
                            target = value
                        try:
                            previous = wrappers[alias]
                        except KeyError:
                            previous = handler[alias]
                        wrappers[alias] = target
                        routed = {alias: target}
                        saved = ((alias, previous),)
                    else:  # every target and every previous read before any is written
                        routed, saved = {}, []
                        for alias, value, is_alias in plan:
                            routed[alias] = (
                                (wrappers.get(value) or handler[value]) if is_alias else value
                            )
                            saved.append((alias, wrappers.get(alias) or handler[alias]))
                        wrappers.update(routed)
                    if frames is None:
                        frames = THREAD_FRAMES.current()
                    # A compact frame; _thread_frames() makes it a _Frame if the general path
                    # ever needs it.
                    frames.append((self, saved, wrappers, routed, ident))
                    return routed
        return self.enter()

    def __exit__(self, exc_type, exc_value, traceback):
        if self._overlay_for is not None:
            routes = _ROUTES.get()
            if routes is self._solo_routes:  # entered where no block was open
                _ROUTES.set(None)
                return False
            if routes:  # its compact frame, innermost in the context
                frame = routes.get(_FRAMES)
                if type(frame) is tuple and frame[0] is self:
                    _ROUTES.set(frame[1])
                    return False
        elif self._simple:
            try:
                frames = _THREAD_FRAME_LISTS[_thread.get_ident()]
                frame = frames[-1]
            except (KeyError, IndexError):
                frame = None
            # Its compact frame, innermost in the thread (__class__: a _Frame's is its type).
            if frame.__class__ is tuple and frame[0] is self:
                del frames[-1]
                wrappers = frame[2]
                for alias, previous in frame[1]:  # distinct aliases: any order restores
                    wrappers[alias] = previous
                return False
        self.exit(body_failed=exc_type is not None)
        return False

    def _fast_plan(self, handler):
        """(alias, value, value is an alias string) of the block, its aliases checked against
        DATABASES, once per handler; a wrapper given as the value is stored as it is (a legacy
        reference standing for one never takes the fast path)."""
        if self._checked is not handler:
            plan = []
            for (alias, value), kind in zip(self.aliases, self.kinds):
                check_alias(alias, handler)
                if kind is ALIAS:
                    check_alias(value, handler)
                elif not _is_plain_wrapper(value):
                    self._simple = False  # a proxy: unwrapped each time, the general way
                    return None
                plan.append((alias, value, kind is ALIAS))
            self._one = plan[0] if len(plan) == 1 else None
            self._plan, self._checked = plan, handler
        return self._plan

    def _enter_context_fast(self, handler):
        if self._fast_plan(handler) is None:
            return self.enter()
        self._overlay = dict(
            (alias, context.OwnAlias(value) if is_alias else value)
            for alias, value, is_alias in self._plan
        )
        self._routed_to = _RoutedTo(handler, list(self._overlay.items()))
        # Overlays are never changed once set (a task's copy of the context shares them):
        # this one can be set each time.
        self._solo_routes = dict(self._overlay)
        self._solo_routes[_FRAMES] = (self, None)
        self._overlay_for, self._overlay_class = handler, handler.__class__
        return self.__enter__()

    # -- as a decorator ---------------------------------------------------------------------

    def __call__(self, func):
        if isinstance(func, type) or (_ClassType is not None and isinstance(func, _ClassType)):
            raise TypeError(
                "connlocal_shim: route_connections decorates functions and methods, not "
                "classes (%s): decorate its methods instead" % func.__name__
            )
        if not callable(func):
            raise TypeError(
                "connlocal_shim: route_connections decorates functions and methods, not %s"
                % type(func).__name__
            )
        if _aio is not None:
            routed = _aio.route_async_callable(self, func)
            if routed is not None:
                return routed
        if inspect.isgeneratorfunction(func):
            @wrapt.decorator
            def routed_generator(wrapped, instance, args, kwargs):
                return RoutedGenerator(self, wrapped(*args, **kwargs))

            return routed_generator(func)

        @wrapt.decorator
        def routed(wrapped, instance, args, kwargs):
            frame = self.open()
            try:
                result = wrapped(*args, **kwargs)
            except BaseException:
                self.close_frame(frame, body_failed=True)
                raise
            self.close_frame(frame)
            return self.routed_result(result)

        return routed(func)

    def routed_result(self, result):
        """A call that returned a generator (or a coroutine, or an async generator) has run
        none of its code yet: route that code where it runs."""
        if isinstance(result, types.GeneratorType):
            return RoutedGenerator(self, result)
        if _aio is not None:
            return _aio.routed_result(self, result)
        return result


try:  # Python 2's old-style classes
    _ClassType = types.ClassType
except AttributeError:
    _ClassType = None


class RoutedSteps(object):
    """What RoutedGenerator and the async one (_aio.RoutedAsyncGenerator) share: the block,
    the generator, and the frame of its routing, made at its first step."""

    def __init__(self, route, generator):
        self._route = route
        self._generator = generator
        self._frame = None
        self._done = False

    def __getattr__(self, name):  # gi_frame, gi_running, ag_code...
        return getattr(self._generator, name)

    def __repr__(self):
        return "<%r of %r>" % (self._route, self._generator)


class RoutedGenerator(RoutedSteps):
    """A generator whose code runs with a block's routing: each step puts the routing in place
    and takes it away again, so that between steps the consumer keeps its own; the block's
    connections (a factory's) last for the whole iteration and are disposed of at its end."""

    def __iter__(self):
        return self

    def __next__(self):
        return self._step(self._generator.send, None)

    next = __next__  # Python 2

    def send(self, value):
        return self._step(self._generator.send, value)

    def throw(self, *args):
        return self._step(self._generator.throw, *args)

    def close(self):
        if self._done:
            return
        self._done = True
        if self._frame is None:  # never started: none of its code ran, none will
            self._generator.close()
            return
        self._route.point(self._frame)  # its finally blocks run routed
        try:
            self._generator.close()
        except BaseException:
            self._route.close_frame(self._frame, body_failed=True)
            raise
        self._route.close_frame(self._frame)

    def _step(self, method, *args):
        if self._done:
            return method(*args)
        route = self._route
        if self._frame is None:
            self._frame = route.open()
        else:
            route.point(self._frame)
        try:
            value = method(*args)
        except BaseException as error:
            self._done = True
            finished = isinstance(error, (StopIteration, GeneratorExit))
            route.close_frame(self._frame, body_failed=not finished)
            raise
        route.suspend(self._frame)
        return value

    def __del__(self):
        if self._frame is not None and not self._done:
            self.close()  # its finally blocks run routed, its connections are disposed of



if sys.version_info >= (3, 5):
    from connlocal_shim import _aio

    RouteConnections.__aenter__ = _aio.aenter
    RouteConnections.__aexit__ = _aio.aexit
else:  # Python 2 cannot parse async def
    _aio = None


# route_connections() of alias strings only gives the same block for the same arguments: a block
# holds no state of its own between uses (its frames are the thread's or the context's), and a
# view's `with route_connections(default="master"):` then costs what a block made once does.
# One alias (most blocks): {alias: {value: block}}, one dict for close_connections=False and
# one for True; several aliases: {(close_connections, *sorted items): block}. Only values of
# exactly str (and unicode) are kept: anything else may compare or hash as it likes (Django
# 1.5/1.6's wrappers hash and compare by alias), and a block holds its values (a wrapper kept
# here would be kept alive).
_ONE_ALIAS_BLOCKS = {}
_ONE_ALIAS_CLOSING_BLOCKS = {}
_BLOCKS = {}
_BLOCKS_KEPT = 256
# A wrapper's {alias: route_connections(alias=it)}; route_connections() reads it back as the
# attribute of that name (tests/test_routing.py fails if the two names part).
_WRAPPER_BLOCKS = "_connlocal_shim_blocks"
_PLAIN_STRINGS = frozenset(
    cls for cls in (str, type(u"")) if issubclass(cls, string_types)
)


def _one_alias_block(by_alias, alias, value, close_connections):
    """route_connections(alias=value) for a plain string ``value``, kept in ``by_alias``."""
    block = RouteConnections(close_connections=close_connections, **{alias: value})
    blocks = by_alias.get(alias)
    if blocks is None:
        if len(by_alias) >= _BLOCKS_KEPT:
            by_alias.clear()
        blocks = by_alias[alias] = {}
    elif len(blocks) >= _BLOCKS_KEPT:
        blocks.clear()
    blocks[value] = block
    return block


def _wrapper_block(alias, wrapper):
    """route_connections(alias=wrapper), kept in the wrapper's own ``__dict__`` where it is a
    plain DatabaseWrapper: the block lives exactly as long as the wrapper (a DatabaseWrapper
    already refers to itself, through its creation and operations objects, so it is the cycle
    collector that frees it either way), and a wrapper that hashes or compares by alias
    (Django 1.5/1.6) is still one key of its own. A copy of the wrapper carries the dict, but
    a block is only used for the wrapper it routes to."""
    block = RouteConnections(**{alias: wrapper})
    if block.kinds[0] is WRAPPER and _is_plain_wrapper(wrapper):
        state = getattr(wrapper, "__dict__", None)
        if type(state) is dict:
            blocks = state.get(_WRAPPER_BLOCKS)
            if type(blocks) is not dict or len(blocks) >= _BLOCKS_KEPT:
                blocks = state[_WRAPPER_BLOCKS] = {}
            block._kept_for = wrapper
            blocks[alias] = block
    return block


def route_connections(close_connections=False, **aliases):
    """Re-point database aliases for the current thread (or async task) only, for a block or a
    function call; a decorator and a context manager (``with`` and ``async with``).

    Each keyword names an alias to re-point; its value is:

    - an alias string: the current thread's own connection to that database as configured in
      settings, never one an outer block re-pointed;
    - a DatabaseWrapper, for example one another thread shares with ``shared_connection()``,
      or ``django.db.connection`` (what the default alias serves at entry);
    - a connection factory such as ``separate_connection("master")``, called on entry, whose
      connection is closed on exit.

    All values are resolved before any alias is re-pointed, so aliases can be swapped::

        with route_connections(default="other", other="default"):
            ...

    On exit, normal or by exception, every alias points where it pointed before (blocks left
    out of order each undo their own part). ``close_connections=True`` also closes the
    connections the block used, except one still inside a transaction or atomic block (it
    stays open for whoever opened that transaction) and one that belongs to another thread. An
    unknown alias raises ConnectionDoesNotExist on entry, and nothing is re-pointed.

    As a decorator it routes whatever the function runs: a plain function's call, a generator's
    whole iteration (each step routed, the consumer's code between steps not), a coroutine
    function's or an async generator's code::

        @route_connections(default="master")
        def edit(request):
            ...
    """
    if aliases:
        # The common case, one alias, with the fewest operations (each builtin call counts on
        # Python 2): the kwargs dict is ours to take apart.
        alias, value = aliases.popitem()
        if not aliases:  # it was the only one
            if close_connections is False:
                if type(value) in _PLAIN_STRINGS:  # by type, reading no __class__
                    try:
                        return _ONE_ALIAS_BLOCKS[alias][value]
                    except KeyError:
                        return _one_alias_block(_ONE_ALIAS_BLOCKS, alias, value, False)
                # A wrapper keeps its own blocks (see _wrapper_block), read as an attribute
                # (cheaper than through __dict__). What a proxy gives for it is the blocks of
                # the object it forwards to, and a block is only used for the value it was
                # kept for.
                try:
                    block = value._connlocal_shim_blocks[alias]  # _WRAPPER_BLOCKS
                except Exception:  # none kept, or not a wrapper at all
                    block = None
                if block is not None and block._kept_for is value:
                    return block
                return _wrapper_block(alias, value)
            # The branch above again for closing blocks (no wrapper's kept block): one test
            # fewer on the common path, about 190 instructions per call with a wrapper.
            if close_connections is True:
                if type(value) in _PLAIN_STRINGS:
                    try:
                        return _ONE_ALIAS_CLOSING_BLOCKS[alias][value]
                    except KeyError:
                        return _one_alias_block(_ONE_ALIAS_CLOSING_BLOCKS, alias, value, True)
            return RouteConnections(close_connections=close_connections, **{alias: value})
        aliases[alias] = value
    for value in aliases.values():
        if type(value) not in _PLAIN_STRINGS:  # a wrapper, a factory: a block of its own
            return RouteConnections(close_connections=close_connections, **aliases)
    key = (bool(close_connections),) + tuple(sorted(aliases.items()))
    block = _BLOCKS.get(key)
    if block is not None:
        return block
    block = RouteConnections(close_connections=close_connections, **aliases)
    if len(_BLOCKS) >= _BLOCKS_KEPT:
        _BLOCKS.clear()
    _BLOCKS[key] = block
    return block
