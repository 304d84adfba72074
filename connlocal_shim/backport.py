"""The backport of Django ticket #17258 to Django 1.2/1.3: ``install()`` and ``uninstall()``.

install() probes the running Django (``features.detect()``), and where pieces are missing it:

1. gives ``django.db.connections`` a thread-local storage and per-thread ``__setitem__`` /
   ``__delitem__`` (``handler.py``);
2. rebuilds every loaded DatabaseWrapper class without ``threading.local``, with Django 1.4's
   thread-sharing API, and rebinds the module globals that name the old classes
   (``wrappers.py``); sqlite connections open with ``check_same_thread=False``;
3. aliases ``connection_created`` receivers of the old classes to the new ones;
4. turns each old wrapper object (``django.db.connection`` and every copy modules captured at
   import) into a proxy of the current thread's ``connections[alias]``, after moving the
   installing thread's open connection and transaction state to its new wrapper.

Every change is a record in one :class:`~connlocal_shim.registry.Registry`; uninstall() reverts
them in reverse order and moves the calling thread's state back. On Django 1.4 and later nothing
is missing and nothing is patched.
"""
import logging
import sys
import threading
import warnings

from connlocal_shim.compat import get_ident
from connlocal_shim.context import context_routing_handler_class
from connlocal_shim.exceptions import ConnlocalShimWarning
from connlocal_shim.features import MISSING, detect
from connlocal_shim.handler import Switch, ThreadConnections, thread_local_handler_class
from connlocal_shim.registry import AttributePatch, Registry, SignalSenderAlias, has_receivers_for
from connlocal_shim.wrappers import (
    ClassRebuilder,
    SqliteModuleWithSharedConnections,
    captured_wrapper_proxy_class,
    is_sqlite_dbapi,
    move_state,
)

logger = logging.getLogger("connlocal_shim")

_lock = threading.RLock()
_installation = None
_refusal = None
# Every class captured_wrapper_proxy_class() made, with its alias: never rebuilt, always unwrapped.
_proxy_aliases = {}

SHARING_STATE = ("_thread_ident", "allow_thread_sharing")


def _is_proxy_class(cls):
    return cls in _proxy_aliases


def _class_name(cls):
    return "%s.%s" % (cls.__module__, cls.__name__)


class Installation(object):
    """What one install() did, and how to take it back."""

    def __init__(self, features):
        self.features = features
        self.registry = Registry()
        self.storage = None
        self.rebuilder = None
        self.recorded_classes = set()
        self.originals = {}  # alias -> (wrapper object captured before install, settings_dict)
        self.thread_ident = get_ident()
        self.context_routing = False
        self.thread_end_switch = Switch()  # turned off on uninstall (see handler.ThreadEnd)

    # -- install ----------------------------------------------------------------------------

    def backport(self):
        targets = self.features.targets
        missing = set(self.features.missing)
        records = []
        if "thread_local_handler" in missing:
            shared = vars(targets.connections)["_connections"]
            self.originals = dict(
                (alias, (wrapper, wrapper.settings_dict)) for alias, wrapper in shared.items()
            )
            self.storage = ThreadConnections(self.thread_end_switch)
            handler_class = thread_local_handler_class(
                targets.handler_class, self.storage, self.open_wrapper, self.unwrap
            )
            records.append(AttributePatch(
                targets.connections, "_connections", self.storage, "django.db.connections",
                "each thread keeps its own DatabaseWrapper per alias (ticket #17258)",
            ))
            records.append(AttributePatch(
                targets.connections, "__class__", handler_class, "django.db.connections",
                "per-thread connections[alias] = wrapper and del connections[alias]",
            ))
        if "wrappers_without_local" in missing:
            sharing = "thread_sharing" in missing
            self.rebuilder = ClassRebuilder(
                targets.base_wrapper,
                guarded=targets.guarded_methods if sharing else (),
                database_error=targets.utils.DatabaseError,
                skip=_is_proxy_class,
            )
            records.extend(self.class_records(self.rebuilder.loaded_classes()))
        # The installing thread's state of each old wrapper, read before the wrappers become
        # proxies (after that, vars() of them would forward to the new wrappers).
        states = {}
        if "connection_proxy" in missing:
            for alias, (wrapper, _) in sorted(self.originals.items()):
                states[alias] = (type(wrapper), dict(vars(wrapper)))
                proxy_class = captured_wrapper_proxy_class(
                    type(wrapper), alias, self.storage, targets.connections
                )
                _proxy_aliases[proxy_class] = alias
                records.append(AttributePatch(
                    wrapper, "__class__", proxy_class,
                    "the %r wrapper captured before install" % alias,
                    "django.db.connection and every copy taken at import act as the current "
                    "thread's connections[%r]" % alias,
                ))
        self.registry.apply_all(records)
        for alias, (old_class, state) in sorted(states.items()):
            self.move_in(alias, old_class, state)

    def class_records(self, classes):
        """Rebuild ``classes`` and return the records that put the new classes in use."""
        from django.db.backends.signals import connection_created

        pairs = [(old, self.rebuilder.rebuild(old)) for old in classes]
        pairs = [(old, new) for old, new in pairs if old not in self.recorded_classes]
        self.recorded_classes.update(old for old, _ in pairs)
        by_id = dict((id(old), (old, new)) for old, new in pairs)
        defining = set(old.__module__ for old, _ in pairs)
        found = []  # (module name, global name, module, replacement, why), sorted below
        for module_name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for name, value in list(namespace.items()):
                pair = by_id.get(id(value))
                if pair is not None and pair[0] is value:
                    why = "names %s, rebuilt without threading.local" % _class_name(pair[0])
                    found.append((module_name, name, module, pair[1], why))
            database = namespace.get("Database")
            if (
                self.rebuilder.guarded
                and module_name in defining
                and is_sqlite_dbapi(database)
                and not isinstance(database, SqliteModuleWithSharedConnections)
            ):
                why = "opens sqlite connections with check_same_thread=False, as Django 1.4 does"
                proxy = SqliteModuleWithSharedConnections(database)
                found.append((module_name, "Database", module, proxy, why))
        found.sort(key=lambda item: item[:2])
        records = [
            AttributePatch(module, name, replacement, module_name, why)
            for module_name, name, module, replacement, why in found
        ]
        for old, new in pairs:
            if not has_receivers_for(connection_created, old):
                continue
            records.append(SignalSenderAlias(
                connection_created, old, new, "connection_created",
                "receivers connected for %s still fire for its rebuilt class" % _class_name(old),
            ))
        return records

    def move_in(self, alias, old_class, state):
        """The installing thread keeps its open connection and transaction state."""
        original = self.originals[alias][0]
        new_class = self.rebuilder.rebuild(old_class) if self.rebuilder else old_class
        wrapper = new_class.__new__(new_class)
        move_state(state, original, wrapper)
        if self.rebuilder is not None and self.rebuilder.guarded:
            wrapper._thread_ident = get_ident()
            wrapper.allow_thread_sharing = False
        self.storage.wrappers[alias] = wrapper

    # -- the handler's callbacks --------------------------------------------------------------

    def open_wrapper(self, handler, alias):
        """The current thread's first use of ``alias``: create its wrapper, as Django 1.4 does."""
        handler.ensure_defaults(alias)
        settings_dict = handler.databases[alias]
        backend = self.features.targets.utils.load_backend(settings_dict["ENGINE"])
        wrapper_class = backend.DatabaseWrapper
        if self.rebuilder is not None and self.rebuilder.needs_rebuild(wrapper_class):
            wrapper_class = self.adopt(wrapper_class)
        wrapper = wrapper_class(settings_dict, alias)
        self.storage.wrappers[alias] = wrapper
        return wrapper

    def adopt(self, wrapper_class):
        """A wrapper class that still derives from threading.local (a backend reached through a
        reference taken before install): rebuild it now, like those found at install."""
        with _lock:
            classes = [c for c in reversed(wrapper_class.__mro__) if self.rebuilder.needs_rebuild(c)]
            self.registry.apply_all(self.class_records(classes))
            logger.debug("connlocal_shim: rebuilt %s on first use", _class_name(wrapper_class))
            return self.rebuilder.converted[wrapper_class]

    def unwrap(self, value):
        """The DatabaseWrapper ``value`` stands for, or None if it is not one."""
        alias = _proxy_aliases.get(type(value))
        if alias is not None:
            return self.features.targets.connections[alias]
        base = self.features.targets.base_wrapper
        bases = (base, self.rebuilder.converted[base]) if self.rebuilder else (base,)
        return value if isinstance(value, bases) else None

    # -- uninstall ----------------------------------------------------------------------------

    def revert(self):
        self.thread_end_switch.on = False
        current = dict(self.storage.wrappers) if self.storage is not None else {}
        self.registry.revert_all()
        if self.storage is not None:
            self.move_out(current)

    def move_out(self, current):
        """The uninstalling thread keeps its open connections, now in the original wrappers."""
        shared = vars(self.features.targets.connections)["_connections"]
        original_of = {}
        if self.rebuilder is not None:
            original_of = dict((new, old) for old, new in self.rebuilder.converted.items())
        drop = SHARING_STATE if self.rebuilder is not None and self.rebuilder.guarded else ()
        moved = set()
        for alias, wrapper in sorted(current.items()):
            own = getattr(wrapper, "alias", None) == alias
            if own and drop:
                own = wrapper._thread_ident == get_ident()
            if not own:
                continue  # re-pointed for this thread only: that ends with the backport
            old_class = original_of.get(type(wrapper), type(wrapper))
            original = self.originals.get(alias, (None, None))[0]
            if type(original) is not old_class:
                original = old_class(wrapper.settings_dict, alias)
            move_state(vars(wrapper), wrapper, original, drop=drop)
            shared[alias] = original
            moved.add(alias)
        for alias, (original, settings_dict) in sorted(self.originals.items()):
            if alias in moved:
                continue
            state = vars(original)
            if not state or get_ident() == self.thread_ident:
                # Empty (made when its class was restored from this thread), or the state this
                # thread handed to a wrapper that is gone: start afresh, as in a new thread.
                state.clear()
                type(original).__init__(original, settings_dict, alias)

    # -- reporting ----------------------------------------------------------------------------

    def rebuilt_classes(self):
        if self.rebuilder is None:
            return []
        return sorted(_class_name(cls) for cls in self.rebuilder.converted)

    def redirected_references(self):
        return sorted(
            alias for alias, (wrapper, _) in self.originals.items()
            if type(wrapper) in _proxy_aliases
        )

    def summary(self):
        if not len(self.registry):
            return (
                "connlocal_shim: nothing to patch, Django %s has thread-local connections "
                "(ticket #17258)" % self.features.django_version
            )
        return (
            "connlocal_shim: backported thread-local connections to Django %s: %s; "
            "%d classes rebuilt without threading.local, %d captured wrappers redirected "
            "(%d patches)" % (
                self.features.django_version,
                ", ".join(self.features.missing),
                len(self.rebuilt_classes()),
                len(self.redirected_references()),
                len(self.registry),
            )
        )


def install():
    """Make ``django.db.connections`` thread-local, as Django 1.4 does (ticket #17258).

    Idempotent and thread-safe; on Django 1.4 and later it patches nothing. INSTALLED_APPS
    calls it for you; call it yourself in wsgi.py (before the first request) on Django 1.2/1.3,
    where the app registry may not load INSTALLED_APPS in a production process::

        import connlocal_shim
        connlocal_shim.install()

    On a database layer it does not recognise it patches nothing and says why in a
    :class:`ConnlocalShimWarning`; on a Django without ``django.db.connections`` (1.1 and
    earlier) it raises ImproperlyConfigured.
    """
    global _installation, _refusal
    with _lock:
        if _installation is not None:
            return
        features = detect()
        if not features.has_connections:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "connlocal_shim needs django.db.connections, which Django %s does not have; "
                "it supports Django 1.2 and later" % features.django_version
            )
        if features.problems:
            _refusal = "; ".join(features.problems)
            message = (
                "connlocal_shim: Django %s left unpatched: its database layer is not one the "
                "backport knows (%s)" % (features.django_version, _refusal)
            )
            logger.warning(message)
            warnings.warn(message, ConnlocalShimWarning, stacklevel=2)
            return
        installation = Installation(features)
        installation.backport()
        _installation, _refusal = installation, None
        logger.info(installation.summary())
        for record in installation.registry:
            logger.debug("connlocal_shim: patched %s: %s", record.describe(), record.why)


def uninstall():
    """Undo install() exactly, in reverse order; the calling thread keeps its connections.

    Other threads' connections opened while installed are dropped with the thread-local
    storage. A patch someone else replaced after install is left alone, with a
    :class:`ConnlocalShimWarning`. Calling it when not installed does nothing.
    """
    global _installation
    with _lock:
        if _installation is None:
            return
        installation, _installation = _installation, None
        reverted = len(installation.registry)
        installation.revert()
        logger.info("connlocal_shim: uninstalled (%d patches reverted)", reverted)


def enable_context_routing():
    """Give django.db.connections the per-context overlay of route_connections, once.

    Called by route_connections on its first use where Django keeps connections in asgiref's
    Local (Django 3.0+); installs first if needed. A site that never routes pays nothing.
    """
    with _lock:
        install()
        installation = _installation
        if installation is None:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "connlocal_shim: cannot route connections, install() refused: %s" % _refusal
            )
        if installation.context_routing:
            return
        handler = installation.features.targets.connections
        record = installation.registry.apply(AttributePatch(
            handler, "__class__", context_routing_handler_class(type(handler)),
            "django.db.connections",
            "route_connections re-points aliases per asyncio task (a ContextVar overlay the "
            "handler reads first)",
        ))
        installation.context_routing = True
        logger.info("connlocal_shim: per-task routing enabled on first use of route_connections")
        logger.debug("connlocal_shim: patched %s: %s", record.describe(), record.why)


def context_routing_enabled():
    installation = _installation
    return installation is not None and installation.context_routing


def is_installed():
    """True between a successful install() and uninstall() (also on Django 1.4+, where
    installing patched nothing)."""
    return _installation is not None


def get_original(target, name):
    """The object ``target.name`` held before connlocal_shim patched it (gevent's
    ``get_original`` for this shim); ``target.name`` itself when it is not patched."""
    with _lock:
        record = _installation.registry.find(target, name) if _installation else None
    if record is None:
        return type(target) if name == "__class__" else getattr(target, name)
    return record.original


def is_patched(target, name):
    """Whether connlocal_shim replaced ``target.name`` (and it is still its replacement)."""
    with _lock:
        record = _installation.registry.find(target, name) if _installation else None
        return record is not None and record.is_ours()


def status():
    """What connlocal_shim found and did in this process, as plain data::

        >>> connlocal_shim.status()["features"]["thread_local_handler"]
        'missing'        # Django 1.3: backported (see "patches")
        >>> connlocal_shim.status()["sharing_api"]
        'attribute'      # the API in use: allow_thread_sharing, given by the backport

    "features" is what Django itself has (its "sharing_api" is None where Django has no thread
    sharing); the top-level "sharing_api" is what code can use now: "counter"
    (inc_thread_sharing(), Django 2.2+), "attribute" (allow_thread_sharing, Django 1.4-2.1 and
    the backport), or None (not installed on Django 1.2/1.3).
    """
    with _lock:
        installation = _installation
        features = installation.features if installation else detect()
        sharing_api = features.sharing_api
        if sharing_api is None and installation is not None and (
            "thread_sharing" in features.missing
        ):
            sharing_api = "attribute"
        return {
            "installed": installation is not None,
            "refused": _refusal,
            "features": features.as_dict(),
            "sharing_api": sharing_api,
            "patches": [record.as_dict() for record in installation.registry]
            if installation else [],
            "rebuilt_classes": installation.rebuilt_classes() if installation else [],
            "redirected_references": installation.redirected_references() if installation else [],
        }
