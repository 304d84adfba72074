"""The backport of Django ticket #17258 to Django 1.2/1.3: ``install()`` and ``uninstall()``.

install() probes the running Django (``features.detect()``), and where pieces are missing it:

1. gives ``django.db.connections`` a per-thread (per-greenlet) storage and per-thread
   ``__setitem__`` / ``__delitem__`` (``handler.py``);
2. rebuilds every loaded DatabaseWrapper class without its thread-local base, with Django 1.4's
   thread-sharing API, and rebinds the module globals that name the old classes (and the
   unbound methods of them that modules kept) (``wrappers.py``, ``carryover.py``); sqlite
   connections open with ``check_same_thread=False``, whenever their backend loads;
3. lets ``connection_created`` receivers connected for an old class hear its rebuilt class;
4. on Django 1.2, keeps transaction state with the wrapper an alias serves
   (``transactions.py``);
5. turns each old wrapper object (``django.db.connection`` and every copy modules captured at
   import) into a proxy of the current thread's ``connections[alias]``, after moving the
   installing thread's open connection and transaction state to its new wrapper.

Everything is computed first; the changes are then applied while no other thread runs
(``atomic.py``), so a querying thread sees the old database layer or the new one, whole. Every
change is a record in one :class:`~connlocal_shim.registry.Registry`; uninstall() reverts them
in reverse order, the same way, and moves the calling thread's state back. On Django 1.4 and
later nothing is missing and nothing is patched.
"""
import logging
import sys
import threading
import types
import warnings

from django.core.exceptions import ImproperlyConfigured

from connlocal_shim import observe
from connlocal_shim.atomic import others_paused, paused_between_calls
from connlocal_shim.compat import PY2
from connlocal_shim.context import THREAD_FRAMES, context_routing_handler_class
from connlocal_shim.exceptions import ConnlocalShimWarning
from connlocal_shim.features import detect
from connlocal_shim.handler import (
    ThreadConnections,
    check_alias_and_wrapper,
    forget_fast_mode,
    thread_local_handler_class,
)
from connlocal_shim.identity import PerThread, forget_binding, get_ident
from connlocal_shim.registry import AttributePatch, Registry, live_receivers_with_aliases, sender_key
from connlocal_shim.transactions import OWN, TABLES, TransactionTable
from connlocal_shim.wrappers import (
    ClassRebuilder,
    SqliteModuleWithSharedConnections,
    UnknownLayout,
    captured_wrapper_proxy_class,
    is_sqlite_dbapi,
    move_state,
    point_helpers,
    proxied_alias,
)

logger = logging.getLogger("connlocal_shim")

_lock = threading.RLock()
_installation = None
_refusal = None  # why the last install() patched nothing, for status() and the W001 check

# How long install() and uninstall() wait for other threads to leave the database layer's
# methods (a call under way there would resume under the other layer): see atomic.py.
CALLS_UNDER_WAY_TIMEOUT = 5.0

SHARING_STATE = ("_thread_ident", "allow_thread_sharing")
STAND_IN = "_connlocal_shim_stand_in"  # in a thread's state of an original wrapper


def _class_name(cls):
    return "%s.%s" % (cls.__module__, cls.__name__)


def _code_of(value, found):
    """Add the code objects ``value`` (a class attribute) runs to ``found``: a function's and
    those nested in it, through methods, class and static methods, properties and wrappers."""
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType):
        pending = [code]
        while pending:
            code = pending.pop()
            if code not in found:
                found.add(code)
                pending.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        return
    if isinstance(value, property):
        for part in (value.fget, value.fset, value.fdel):
            _code_of(part, found)
        return
    if isinstance(value, (staticmethod, classmethod)):
        _code_of(value.__func__, found)
    elif callable(value):  # a method wrapper (wrapt's, such as the thread-sharing guard)
        wrapped = getattr(value, "__wrapped__", None)
        if wrapped is not None and wrapped is not value:
            _code_of(wrapped, found)


def _is_data(value):
    """A plain value (not a function, method or descriptor) set on a class."""
    return not callable(value) and not hasattr(type(value), "__get__")


class Installation(object):
    """What one install() did, and how to take it back."""

    def __init__(self, features):
        self.features = features
        self.registry = Registry()
        self.storage = None
        self.handler_class = None
        self.rebuilder = None
        self.pairs = []  # (original class, rebuilt class) rebuilt by prepare()
        self.originals = {}  # alias -> (wrapper object captured before install, settings_dict)
        self.proxy_classes = {}  # proxy class of a captured wrapper -> its alias
        self.sender_aliases = {}  # sender key of a rebuilt class -> that of its original
        self.unrebuildable = {}  # class found after install that cannot be rebuilt -> why
        self.thread_ident = get_ident()
        self.context_routing = False
        self.reverted = False
        self.adopted = PerThread(set)  # aliases whose original state the thread took over
        self.classes_seen = set()  # classes of the wrappers made while installed
        self.observing = None  # the registry's record of the observing handler class, or None
        self.observing_class = None

    # -- install: prepare() changes nothing in Django; apply() runs with other threads paused --

    def prepare(self):
        targets = self.features.targets
        missing = set(self.features.missing)
        if "thread_local_handler" in missing:
            shared = vars(targets.connections)["_connections"]
            self.originals = dict(
                (alias, (wrapper, wrapper.settings_dict)) for alias, wrapper in shared.items()
            )
            self.storage = ThreadConnections(check_alias_and_wrapper(self.unwrap), self.open_alias)
            self.handler_class = thread_local_handler_class(
                targets.handler_class, targets.connections, self.storage, self.open_wrapper,
                self.storage.check,
            )
            self.observing_class = observe.observing_handler_class(self.handler_class)
        if "wrappers_without_local" in missing:
            sharing = "thread_sharing" in missing
            self.rebuilder = _rebuilder_for(
                targets.base_wrapper,
                targets.local_base,
                targets.guarded_methods if sharing else (),
                targets.utils.DatabaseError,
            )
            self.pairs = self.rebuild(self.rebuilder.loaded_classes())
        if "connection_proxy" in missing:
            for alias, (wrapper, _) in sorted(self.originals.items()):
                proxy_class = captured_wrapper_proxy_class(
                    type(wrapper), alias, self.storage, targets.connections
                )
                self.proxy_classes[proxy_class] = alias

    def apply(self):
        targets = self.features.targets
        records = []
        if self.storage is not None:
            records.append(AttributePatch(
                targets.connections, "_connections", self.storage, "django.db.connections",
                "each thread keeps its own DatabaseWrapper per alias (ticket #17258)",
            ))
            records.append(AttributePatch(
                targets.connections, "__class__", self.handler_class, "django.db.connections",
                "per-thread connections[alias] = wrapper and del connections[alias]",
            ))
        if self.rebuilder is not None:
            records.extend(self.class_records(self.pairs))
            records.append(AttributePatch(
                targets.connection_created, "_live_receivers",
                live_receivers_with_aliases(targets.connection_created, self.sender_aliases),
                "django.db.backends.signals.connection_created",
                "receivers connected for an original DatabaseWrapper class also hear its "
                "rebuilt class",
            ))
        if targets.transaction_tables is not None:
            for name in TABLES:
                records.append(AttributePatch(
                    targets.transaction, name,
                    TransactionTable(name, targets.transaction_tables[name], targets.connections),
                    "django.db.transaction",
                    "transaction state of the wrapper an alias serves, not of the alias's "
                    "name (Django 1.2 keeps it per thread and alias)",
                ))
        for proxy_class, alias in sorted(self.proxy_classes.items(), key=lambda item: item[1]):
            wrapper = self.originals[alias][0]
            records.append(AttributePatch(
                wrapper, "__class__", proxy_class,
                "the %r wrapper captured before install" % alias,
                "django.db.connection and every copy taken at import act as the current "
                "thread's connections[%r]" % alias,
            ))
        old_classes = dict((alias, type(wrapper)) for alias, (wrapper, _) in self.originals.items())
        self.registry.apply_all(records)
        try:
            for alias, proxy_class in sorted((a, c) for c, a in self.proxy_classes.items()):
                self.move_in(alias, old_classes[alias])
        except BaseException:
            self.registry.revert_all()
            raise
        if self.rebuilder is not None:
            self.rebuilder.retired = False

    # -- observe mode (observe.py) ---------------------------------------------------------

    def start_observing(self):
        """Guarded calls from other threads are recorded and made on the caller's own wrapper,
        and per-thread re-pointing is refused. Runs with the other threads paused."""
        handler = self.features.targets.connections
        self.observing = self.registry.apply(AttributePatch(
            handler, "__class__", self.observing_class, "django.db.connections",
            "observe mode: connections[alias] = ... and del are refused, as Django 1.3 had "
            "neither; guarded calls from other threads are recorded, not refused",
        ))
        observe.OBSERVING[0] = True

    def stop_observing(self):
        """Back to enforce mode: every thread keeps the wrappers (connections, transactions) it
        has. Runs with the other threads paused."""
        record, self.observing = self.observing, None
        observe.OBSERVING[0] = False
        if record is not None:
            record.revert()
            self.registry.records.remove(record)

    def sharing_under_way(self):
        """Why observe mode cannot start now (what per-thread routing or sharing is in
        place, which observe mode would take away from a thread using it), or None."""
        found = []
        routing = [ident for ident, frames in list(THREAD_FRAMES.by_ident.items()) if frames]
        if routing:
            found.append("route_connections blocks are open in %d thread(s)" % len(routing))
        for ident, wrappers in list(self.storage.by_ident.items()):
            for alias, wrapper in sorted(list(wrappers.items())):
                state = getattr(wrapper, "__dict__", {})
                if state.get("allow_thread_sharing"):
                    found.append("the %r connection of thread %s is shared with other threads"
                                 % (alias, ident))
                elif state.get("_thread_ident") != ident or state.get("alias") != alias:
                    found.append("thread %s has re-pointed connections[%r]" % (ident, alias))
        return "; ".join(sorted(set(found))) or None

    def rebuild(self, classes):
        """Rebuild ``classes``; return the (original, rebuilt) pairs. Changes nothing in Django
        (raises UnknownLayout for a class it cannot take apart)."""
        pairs = [(old, self.rebuilder.rebuild(old)) for old in classes]
        for old, new in pairs:
            self.sender_aliases[sender_key(new)] = sender_key(old)
        return pairs

    def class_records(self, pairs):
        """The records that put the rebuilt classes in use: the module globals naming the
        original classes, or unbound methods of them, and the sqlite module of their modules."""
        rebuilder = self.rebuilder
        by_id = dict((id(old), new) for old, new in pairs)
        defining = set(old.__module__ for old, _ in pairs)
        found = []  # (module name, global name, module, replacement, why), sorted below
        for module_name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for name, value in list(namespace.items()):
                new = by_id.get(id(value))
                if new is not None and rebuilder.originals[new] is value:
                    why = "names %s, rebuilt without threading.local" % _class_name(value)
                    found.append((module_name, name, module, new, why))
                elif PY2 and _unbound_method_of(value, by_id):
                    why = "an unbound method of %s kept at import, now of its rebuilt class" % (
                        _class_name(value.im_class)
                    )
                    found.append((module_name, name, module, rebuilder.translate(value), why))
            if rebuilder.guarded and module_name in defining:
                record = self.sqlite_record(module_name, module)
                if record is not None:
                    found.append(record)
        found.sort(key=lambda item: item[:2])
        return [
            AttributePatch(module, name, replacement, module_name, why)
            for module_name, name, module, replacement, why in found
        ]

    def sqlite_record(self, module_name, module):
        database = vars(module).get("Database")
        if not is_sqlite_dbapi(database) or isinstance(
            database, SqliteModuleWithSharedConnections
        ):
            return None
        why = "opens sqlite connections with check_same_thread=False, as Django 1.4 does"
        proxy = SqliteModuleWithSharedConnections(database)
        return (module_name, "Database", module, proxy, why)

    def first_instance_of(self, cls):
        """The first wrapper of ``cls`` is being made (its backend may have loaded after
        install): its modules' sqlite connections must be shareable too."""
        found = []
        for klass in cls.__mro__:
            module = sys.modules.get(getattr(klass, "__module__", None))
            if module is not None:
                record = self.sqlite_record(module.__name__, module)
                if record is not None and record[0] not in [item[0] for item in found]:
                    found.append(record)
        if not found:
            return
        with _lock:
            if self.reverted:
                return
            records = [AttributePatch(module, name, replacement, module_name, why)
                       for module_name, name, module, replacement, why in found]
            with others_paused():
                self.registry.apply_all(records)
        logger.debug("connlocal_shim: sqlite connections of %s open shareable",
                     ", ".join(record[0] for record in found))

    def move_in(self, alias, old_class):
        """The installing thread keeps its open connection and transaction state."""
        new_class = self.rebuilder.rebuild(old_class) if self.rebuilder else old_class
        if self.rebuilder is not None and not self.old_state_follows_identity():
            # gevent or eventlet patched threading after Django was imported: the old
            # wrapper's state is the OS thread's, which make_own() does not take over (see
            # old_state_follows_identity). The installing greenlet starts afresh, as any
            # greenlet's first use does: a shell made without __init__ had no settings, no
            # ops, and failed its first query.
            self.make_own(alias, new_class(self.originals[alias][1], alias))
            return
        wrapper = new_class.__new__(new_class)
        if self.rebuilder is not None and self.rebuilder.guarded:
            wrapper._thread_ident = get_ident()
            wrapper.allow_thread_sharing = False
        self.make_own(alias, wrapper)

    def make_own(self, alias, wrapper):
        """``wrapper`` becomes the current thread's own connection to ``alias``. Its first one
        of an alias that had a wrapper before install takes over this thread's state of that
        wrapper (a threading.local), the very dict: the thread keeps its open connection and
        transaction state, a call that was running on the old wrapper when install() came
        goes on with the same state, and after uninstall() the old wrapper has what the
        thread did meanwhile. Nothing is lost by installing late, in any thread."""
        if self.features.targets.transaction_tables is not None:
            vars(wrapper)[OWN] = True
        self.storage.current()[alias] = wrapper
        original = self.originals.get(alias, (None,))[0]
        adopted = self.adopted.current()
        rebuilt_base = self.rebuilder.converted[self.rebuilder.base] if self.rebuilder else None
        if original is None or alias in adopted or not isinstance(wrapper, rebuilt_base or ()):
            return  # nothing to take over, or a threading.local wrapper that keeps its own
        adopted.add(alias)
        if self.old_state_follows_identity():
            self.take_over(original, wrapper)

    def old_state_follows_identity(self):
        """Whether an old wrapper's per-thread state is the current identity's: its
        threading.local is the one in use now. Not once gevent or eventlet patched threading
        after Django was imported: the old state is then the OS thread's, which its greenlets
        would share (each starts afresh instead)."""
        return threading.local is self.features.targets.local_base

    def take_over(self, old, wrapper):
        """``wrapper`` (a rebuilt class's) gets the current thread's state of ``old`` (an
        original class's threading.local wrapper), the very dict."""
        state = self.thread_state_of(old)
        fresh = vars(wrapper)
        if "settings_dict" in state:  # this thread used it before install: keep what it has
            for name in SHARING_STATE + (OWN,):
                if name in fresh:
                    state[name] = fresh[name]
        else:
            state.clear()
            state.update(fresh)
        point_helpers(state, old, wrapper)
        wrapper.__dict__ = state
        return wrapper

    def rebuilt_stand_in(self, old):
        """A wrapper of an original class (made by code that kept the class from before install,
        or by a call under way as install() came) stored into the thread's connections: the
        handler keeps a rebuilt wrapper sharing the thread's state of it instead, so that the
        rebuilt classes' methods (and super()) accept it."""
        new_class = self.rebuilder.rebuild(type(old))
        if not self.old_state_follows_identity():  # see there: a fresh one for this greenlet
            state = vars(old)
            return new_class(state["settings_dict"], state["alias"])
        state = self.thread_state_of(old)
        stand_in = state.get(STAND_IN)
        if stand_in is None:
            stand_in = new_class.__new__(new_class)
            if self.rebuilder.guarded:
                stand_in._thread_ident = get_ident()
                stand_in.allow_thread_sharing = False
            self.take_over(old, stand_in)
            state[STAND_IN] = stand_in
        return stand_in

    def thread_state_of(self, original):
        """The current thread's dict of a wrapper made before install (a threading.local);
        an empty one if this thread never used it (its class, now a proxy's, does not set one
        up)."""
        return self.features.targets.local_base.__getattribute__(original, "__dict__")

    # -- the handler's callbacks --------------------------------------------------------------

    def open_wrapper(self, handler, alias):
        """The current thread's first use of ``alias``: create its wrapper, as Django 1.4 does."""
        if self.reverted:  # a call that started before uninstall(): Django's own handler now
            return self.djangos_getitem(handler, alias)
        handler.ensure_defaults(alias)
        settings_dict = handler.databases[alias]
        backend = self.features.targets.utils.load_backend(settings_dict["ENGINE"])
        wrapper_class = backend.DatabaseWrapper
        if self.rebuilder is not None and self.needs_adopting(wrapper_class):
            wrapper_class = self.adopt(wrapper_class)
            if wrapper_class is None:
                return self.djangos_getitem(handler, alias)
        wrapper = wrapper_class(settings_dict, alias)
        self.make_own(alias, wrapper)
        return wrapper

    def djangos_getitem(self, handler, alias):
        """``handler[alias]`` as Django's own handler class does it: after uninstall() for a
        call still under way in this installation's class, or for a class someone made from
        it and uninstall() left in place (asking ``type(handler)`` would run this again)."""
        return self.features.targets.handler_class.__getitem__(handler, alias)

    def open_alias(self, alias):
        """connections._connections[alias] of an alias the thread has not used yet."""
        handler = self.features.targets.connections
        if alias not in handler.databases:
            raise KeyError(alias)
        return handler[alias]

    def needs_adopting(self, wrapper_class):
        return wrapper_class not in self.unrebuildable and self.rebuilder.needs_rebuild(
            wrapper_class
        )

    def adopt(self, wrapper_class):
        """A DatabaseWrapper class that still derives from threading.local (a backend reached
        through a reference taken before install): rebuild it now, like those found at
        install. None if this installation was uninstalled meanwhile."""
        with _lock:
            if self.reverted:
                return None
            if not self.needs_adopting(wrapper_class):
                return self.rebuilder.converted.get(wrapper_class, wrapper_class)
            classes = [c for c in reversed(wrapper_class.__mro__)
                       if self.rebuilder.needs_rebuild(c)]
            try:
                pairs = self.rebuild(classes)
            except UnknownLayout as error:
                self.unrebuildable[wrapper_class] = str(error)
                refused = error
            else:
                refused = None
                with others_paused():
                    self.registry.apply_all(self.class_records(pairs))
        if refused is not None:
            _warn(
                "connlocal_shim: %s stays a threading.local DatabaseWrapper (%s): each thread "
                "still gets its own, but it cannot be shared between threads"
                % (_class_name(wrapper_class), refused)
            )
            return wrapper_class
        logger.debug("connlocal_shim: rebuilt %s on first use", _class_name(wrapper_class))
        return self.rebuilder.converted[wrapper_class]

    def unwrap(self, value):
        """The DatabaseWrapper ``value`` stands for, or None if it is not one."""
        alias = proxied_alias(value)
        if alias is not None:
            return self.features.targets.connections[alias]
        base = self.features.targets.base_wrapper
        if self.rebuilder is None:
            return value if isinstance(value, base) else None
        if type(value) in self.rebuilder.converted:  # an original class's own instance
            return self.rebuilt_stand_in(value)
        return value if isinstance(value, (base, self.rebuilder.converted[base])) else None

    # -- uninstall ----------------------------------------------------------------------------

    def revert(self):
        """Undo every record, other threads paused. Returns the warnings to give: records
        someone else replaced, and what was patched onto rebuilt classes after install."""
        current = dict(self.storage.current()) if self.storage is not None else {}
        code = self.database_layer_code()
        unrebuilt = []
        with paused_between_calls(code, CALLS_UNDER_WAY_TIMEOUT) as under_way:
            self.reverted = True
            if self.storage is not None:
                self.storage.retired = True  # no release at thread end for a storage gone
                forget_fast_mode()  # nor a routing cache keeping it
            observe.OBSERVING[0] = False
            self.observing = None
            messages = self.registry.revert_all()
            if self.rebuilder is not None:
                self.rebuilder.retired = True  # see wrappers.ClassOfRebuilt
                dropped = self.carry_back()
                if dropped:
                    messages.append(
                        "connlocal_shim: uninstall() dropped what was set on rebuilt "
                        "DatabaseWrapper classes after install, which went with them: %s; "
                        "apply it again to the original classes if you still need it"
                        % ", ".join(dropped)
                    )
                unrebuilt = self.revert_classes_defined_meanwhile()
            if self.storage is not None:
                self.move_out(current)
        # Out of the block, which must not take a lock or log (atomic.others_paused): a
        # green library's arrival meanwhile rebinds a retired class, which nothing uses.
        if self.storage is not None:
            forget_binding(self.handler_class.connlocal_shim_rebind)
        for name in unrebuilt:
            logger.debug("connlocal_shim: %s, defined while installed, is a threading.local "
                         "class again", name)
        if under_way:
            messages.append(_went_ahead("uninstall()", under_way))
        return messages

    def revert_classes_defined_meanwhile(self):
        """DatabaseWrapper classes defined on the rebuilt classes while installed (a backend
        first imported then, a subclass made by hand) get their unpatched counterparts:
        threading.local classes on the original bases, which the module globals naming them
        name from now on (Django loads backends through them), as install() does the other
        way. Without them, such a class would be neither thread-local nor guarded once the
        rebuilt classes retire. Returns the names of the classes so reverted."""
        rebuilder = self.rebuilder
        pairs = [(cls, rebuilder.unrebuild(cls)) for cls in rebuilder.defined_on_rebuilt()]
        by_id = dict((id(cls), new) for cls, new in pairs)
        for module_name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for name, value in list(namespace.items()):
                new = by_id.get(id(value))
                if new is not None and rebuilder.originals.get(value) is new:
                    setattr(module, name, new)
                elif PY2 and _unbound_method_of(value, by_id):
                    setattr(module, name, types.MethodType(
                        value.__func__, None, by_id[id(value.im_class)]
                    ))
        return [_class_name(cls) for cls, _ in pairs]

    def carry_back(self):
        """What was set on the rebuilt classes after install: plain values (caches such as
        Django's ``DatabaseWrapper._version``) go to the original classes; functions and
        descriptors, which may stand on the rebuilt classes, are named in the warning."""
        dropped = []
        for new, name, value in self.rebuilder.changed_since_built():
            original = self.rebuilder.originals[new]
            if self.rebuilder.converted.get(original) is not new:
                continue  # a class rebuilt again since: this one is no longer in use
            if value is not None and _is_data(value):
                setattr(original, name, value)
                self.rebuilder.carried_back(original, name, value)
            else:
                self.rebuilder.forget_change(new, name)
                dropped.append("%s.%s%s" % (
                    _class_name(original), name, " (deleted)" if value is None else ""
                ))
        return dropped

    def move_out(self, current):
        """The uninstalling thread keeps its open connections, in the original wrappers."""
        shared = vars(self.features.targets.connections)["_connections"]
        original_of = self.rebuilder.originals if self.rebuilder is not None else {}
        drop = SHARING_STATE if self.rebuilder is not None and self.rebuilder.guarded else ()
        drop += (OWN, STAND_IN)
        moved = set()
        for alias, wrapper in sorted(current.items()):
            own = getattr(wrapper, "alias", None) == alias
            if own and self.rebuilder is not None and self.rebuilder.guarded:
                own = vars(wrapper).get("_thread_ident") == get_ident()
            if not own:
                continue  # re-pointed for this thread only: that ends with the backport
            original = self.originals.get(alias, (None, None))[0]
            if original is not None and vars(wrapper) is vars(original):
                continue  # the original's own state all along: cleaned below
            old_class = original_of.get(type(wrapper), type(wrapper))
            if type(original) is not old_class:
                original = old_class(wrapper.settings_dict, alias)
            move_state(vars(wrapper), wrapper, original, drop=drop)
            shared[alias] = original
            moved.add(alias)
        for alias, (original, settings_dict) in sorted(self.originals.items()):
            if alias in moved:
                continue
            state = vars(original)
            if not state:  # made when its class was restored: start afresh, as a new thread
                type(original).__init__(original, settings_dict, alias)
                continue
            for name in drop:
                state.pop(name, None)
            for value in list(state.values()):
                helper = getattr(value, "__dict__", None)
                target = helper.get("connection") if isinstance(helper, dict) else None
                if target is not None and target is not original and (
                    getattr(target, "__dict__", None) is state
                ):
                    helper["connection"] = original

    def database_layer_code(self):
        """The code objects of the methods a call under way in another thread may be in when
        install() or uninstall() comes: those of every DatabaseWrapper class loaded (original
        and rebuilt ones share them) and of the connections handler's class."""
        targets = self.features.targets
        classes, pending = set(), [targets.base_wrapper]
        if self.rebuilder is not None:
            pending.extend(self.rebuilder.converted.values())
        while pending:
            cls = pending.pop()
            if isinstance(cls, type) and cls not in classes:
                classes.add(cls)
                pending.extend(type.__subclasses__(cls))
        classes.update(klass for klass in targets.handler_class.__mro__ if klass is not object)
        found = set()
        for cls in classes:
            for value in list(vars(cls).values()):
                _code_of(value, found)
        return found

    # -- reporting ----------------------------------------------------------------------------

    def rebuilt_classes(self):
        if self.rebuilder is None:
            return []
        return sorted(_class_name(cls) for cls in self.rebuilder.converted)

    def redirected_references(self):
        return sorted(
            alias for alias, (wrapper, _) in self.originals.items()
            if type(wrapper) in self.proxy_classes
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


# Rebuilt classes are reused by the next install() (see ClassRebuilder): one rebuilder per
# (BaseDatabaseWrapper, thread-local base, guarded methods) for the life of the process.
_rebuilders = {}


def _rebuilder_for(base, local_base, guarded, database_error):
    key = (base, local_base, tuple(guarded))
    rebuilder = _rebuilders.get(key)
    if rebuilder is None:
        rebuilder = _rebuilders[key] = ClassRebuilder(
            base, local_base, guarded=guarded, database_error=database_error,
            made=_wrapper_made,
        )
    return rebuilder


def _wrapper_made(cls):
    """A wrapper of ``cls`` was made: the installation in place sees its class once."""
    installation = _installation
    if installation is not None and cls not in installation.classes_seen:
        installation.classes_seen.add(cls)
        installation.first_instance_of(cls)


def _unbound_method_of(value, by_id):
    """Whether ``value`` is a Python 2 unbound method of one of the classes in ``by_id``."""
    return (
        isinstance(value, types.MethodType)
        and value.__self__ is None
        and id(getattr(value, "im_class", None)) in by_id
    )


def _warn(message):
    logger.warning(message)
    warnings.warn(message, ConnlocalShimWarning, stacklevel=3)


def _went_ahead(what, under_way):
    return (
        "connlocal_shim: %s went ahead after waiting %.1f s for other threads to leave the "
        "database layer's methods, where %s: each may resume under the other layer (a "
        "connection it just opened not found, a wrapper without its thread-sharing state); "
        "install and uninstall while no query is running (startup, tests)" % (
            what, CALLS_UNDER_WAY_TIMEOUT,
            "; ".join("%s is in %s" % (name, where) for name, where in under_way),
        )
    )


def _refuse(reason, django_version, exc_info=None):
    """install() patched nothing: say so everywhere (log, warning, status(), W001)."""
    global _refusal
    _refusal = reason
    if exc_info is not None:
        logger.error("connlocal_shim: install() failed", exc_info=exc_info)
    _warn("connlocal_shim: Django %s left unpatched: %s" % (django_version, reason))


def install():
    """Make ``django.db.connections`` thread-local, as Django 1.4 does (ticket #17258).

    Idempotent and thread-safe: other threads may query while it runs, and see the database
    layer before or after it, whole. On Django 1.4 and later it patches nothing.
    INSTALLED_APPS calls it for you; call it yourself in wsgi.py (before the first request) on
    Django 1.2/1.3, where the app registry may not load INSTALLED_APPS in a production
    process::

        import connlocal_shim
        connlocal_shim.install()

    On a database layer it does not recognise it patches nothing and says why in a
    :class:`ConnlocalShimWarning`, in ``status()["refused"]`` and in the W001 check; an
    unexpected error while patching is undone and reported the same way (with its traceback
    on the ``connlocal_shim`` logger), so that a site still starts. On a Django without
    ``django.db.connections`` (1.1 and earlier) it raises ImproperlyConfigured.
    """
    global _installation, _refusal
    with _lock:
        if _installation is not None:
            return
        mode = observe.configured_mode()  # ImproperlyConfigured before anything changes
        features = detect()
        if not features.has_connections:
            raise ImproperlyConfigured(
                "connlocal_shim needs django.db.connections, which Django %s does not have; "
                "it supports Django 1.2 and later" % features.django_version
            )
        if features.problems:
            _refuse(
                "its database layer is not one the backport knows (%s)"
                % "; ".join(features.problems),
                features.django_version,
            )
            return
        installation = Installation(features)
        try:
            installation.prepare()
            code = installation.database_layer_code()
            if mode == observe.OBSERVE and installation.storage is not None:
                _refuse_observing_with_middleware()
            with paused_between_calls(code, CALLS_UNDER_WAY_TIMEOUT) as under_way:
                installation.apply()
                if mode == observe.OBSERVE and installation.storage is not None:
                    installation.start_observing()
                _installation, _refusal = installation, None
        except ImproperlyConfigured:
            raise  # the site's settings: nothing was applied
        except UnknownLayout as error:
            _refuse(
                "its database layer is not one the backport knows (%s)" % error,
                features.django_version,
            )
            return
        except Exception as error:
            _refuse(
                "install() failed and changed nothing: %s: %s (the traceback is on the "
                "connlocal_shim logger)" % (type(error).__name__, error),
                features.django_version,
                exc_info=sys.exc_info(),
            )
            return
    if under_way:
        _warn(_went_ahead("install()", under_way))
    logger.info(installation.summary())
    if mode == observe.OBSERVE and installation.storage is None:
        logger.warning(
            "connlocal_shim: CONNLOCAL_SHIM['MODE'] = 'observe' has no effect on Django %s, "
            "which refuses cross-thread use of its connections itself (ticket #17258); "
            "remove it", features.django_version)
    for record in installation.registry:
        logger.debug("connlocal_shim: patched %s: %s", record.describe(), record.why)


def uninstall():
    """Undo install() exactly, in reverse order; the calling thread keeps its connections.

    Other threads' connections opened while installed stay with the wrappers that hold them
    (which can still be used and closed). A patch someone else replaced after install is left
    alone, and what was patched onto the rebuilt classes after install goes with them: both
    are named in a :class:`ConnlocalShimWarning`. Calling it when not installed does nothing.
    """
    global _installation
    with _lock:
        if _installation is None:
            return
        installation = _installation
        reverted = len(installation.registry)
        messages = installation.revert()
        _installation = None
    for message in messages:
        warnings.warn(message, ConnlocalShimWarning, stacklevel=2)
    logger.info("connlocal_shim: uninstalled (%d patches reverted)", reverted)


def _refuse_observing_with_middleware():
    """Observe mode keeps connections process-wide; the pinning middleware re-points them per
    thread. Raised by install() before it changes anything."""
    from django.conf import settings

    if observe.pinning_middleware_installed(settings):
        raise ImproperlyConfigured("connlocal_shim: " + observe.MIDDLEWARE_CONFLICT)


def set_mode(mode):
    """Switch between ``"enforce"`` (Django 1.4's refusals, the default) and ``"observe"``
    at runtime, from any thread; installs first if needed::

        connlocal_shim.set_mode("observe")   # record cross-thread use, refuse nothing
        ...
        connlocal_shim.set_mode("enforce")   # Django 1.4's behaviour from the next call

    Each thread keeps the connections and transactions it has, in both directions. Switching
    to observe mode is refused (RuntimeError, nothing changed) while a thread has an alias
    re-pointed or a connection shared, which observe mode would take away from it. Observe
    mode exists where the backport is installed (Django 1.2/1.3): on Django 1.4+, which
    refuses cross-thread use itself, ``set_mode("observe")`` raises ImproperlyConfigured.
    """
    if mode not in observe.MODES:
        raise ValueError("connlocal_shim: set_mode() takes %s, not %r" % (
            " or ".join(repr(name) for name in observe.MODES), mode))
    with _lock:
        install()
        installation = _installation
        if installation is None:
            raise ImproperlyConfigured(
                "connlocal_shim: cannot switch modes, install() refused: %s" % _refusal)
        if installation.storage is None:
            if mode == observe.OBSERVE:
                raise ImproperlyConfigured(
                    "connlocal_shim: Django %s refuses cross-thread use of its connections "
                    "itself (ticket #17258): there is nothing to observe; observe mode is for "
                    "the backport on Django 1.2/1.3" % installation.features.django_version)
            return
        if (installation.observing is not None) == (mode == observe.OBSERVE):
            return
        if mode == observe.OBSERVE:
            with others_paused():
                why = installation.sharing_under_way()
                if why is None:
                    installation.start_observing()
            if why is not None:
                raise RuntimeError(
                    "connlocal_shim: observe mode not started, still in enforce mode: %s "
                    "(observe mode keeps connections process-wide, as Django 1.3 does; switch "
                    "when those blocks have ended)" % why)
        else:
            with others_paused():
                installation.stop_observing()
    logger.info("connlocal_shim: mode is now %r", mode)


def current_mode():
    """``"observe"`` while observe mode is on, else ``"enforce"`` (also on Django 1.4+, which
    enforces by itself, and before install)."""
    installation = _installation
    if installation is not None and installation.observing is not None:
        return observe.OBSERVE
    return observe.ENFORCE


def enable_context_routing():
    """Give django.db.connections the per-context overlay of route_connections, once.

    Called by route_connections on its first use where Django keeps connections in asgiref's
    Local (Django 3.0+); installs first if needed. A site that never routes pays nothing.
    """
    with _lock:
        install()
        installation = _installation
        if installation is None:
            raise ImproperlyConfigured(
                "connlocal_shim: cannot route connections, install() refused: %s" % _refusal
            )
        if installation.context_routing:
            return
        handler = installation.features.targets.connections
        record = AttributePatch(
            handler, "__class__", context_routing_handler_class(type(handler)),
            "django.db.connections",
            "route_connections re-points aliases per asyncio task (a ContextVar overlay the "
            "handler reads first)",
        )
        with others_paused():
            installation.registry.apply(record)
        installation.context_routing = True
    logger.info("connlocal_shim: per-task routing enabled on first use of route_connections")
    logger.debug("connlocal_shim: patched %s: %s", record.describe(), record.why)


def context_routing_enabled():
    installation = _installation
    return installation is not None and installation.context_routing


def current_installation():
    """The Installation in place, or None (for the routing and transaction helpers)."""
    return _installation


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
    the backport), or None (not installed on Django 1.2/1.3). "refused" says why install()
    patched nothing (an unknown database layer, or an error it undid), or is None.
    "unrebuilt_classes" names DatabaseWrapper classes found after install that could not be
    rebuilt (they stay thread-local wrappers).
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
            "mode": current_mode(),
            "observed": observe.sightings(),
            "unrebuilt_classes": sorted(
                "%s: %s" % (_class_name(cls), why)
                for cls, why in installation.unrebuildable.items()
            ) if installation else [],
        }
