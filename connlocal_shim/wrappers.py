"""DatabaseWrapper classes without threading.local, with Django 1.4's thread-sharing API.

Before Django 1.4 every DatabaseWrapper class derived from ``threading.local``, so each thread
silently saw its own state inside one shared object. Python 2 cannot reassign ``__bases__`` away
from ``thread._local`` (the layouts differ), so :class:`ClassRebuilder` builds a new class for
each DatabaseWrapper class (and only for those: mixins, old-style classes included, stay as they
are), with ``object`` in place of the thread-local base and the namespace carried over
(``carryover.py``). The backport then rebinds the module globals that name the old classes,
which keeps ``super(DatabaseWrapper, self)`` and ``BaseDatabaseWrapper.close(self)`` working:
both look the class up in module globals at call time.

Old wrapper objects that Django and user modules captured before install (``django.db.connection``
first of all) become :func:`captured_wrapper_proxy_class` instances: their class is swapped for a
subclass that forwards everything to the current thread's ``connections[alias]``.
"""
import sys
import types
import warnings

import wrapt

from connlocal_shim import observe
from connlocal_shim.carryover import Translator
from connlocal_shim.identity import thread_module
from connlocal_shim.observe import OBSERVING

# A class attribute of every captured-reference proxy class: never rebuilt, always unwrapped.
PROXY_MARK = "_connlocal_shim_stands_for"


class UnknownLayout(Exception):
    """A DatabaseWrapper class the backport cannot rebuild (install() then patches nothing)."""


# -- thread sharing (Django 1.4, ticket #17258) ------------------------------------------------

def make_validate_thread_sharing(database_error):
    thread = thread_module()  # its get_ident is read at each call: gevent may patch it later

    def validate_thread_sharing(self):
        """
        Validates that the connection isn't accessed by another thread than the
        one which originally created it, unless the connection was explicitly
        authorized to be shared between threads (via the `allow_thread_sharing`
        property). Raises an exception if the validation fails.
        """
        # The wording is Django 1.4's, so that code matching on it keeps working when the
        # site upgrades.
        if not self.allow_thread_sharing and self._thread_ident != thread.get_ident():
            raise database_error(
                "DatabaseWrapper objects created in a "
                "thread can only be used in that same thread. The object "
                "with alias '%s' was created in thread id %s and this is "
                "thread id %s." % (self.alias, self._thread_ident, thread.get_ident())
            )

    return validate_thread_sharing


def make_init_with_thread_sharing(made):
    """BaseDatabaseWrapper.__init__ with Django 1.4's ``allow_thread_sharing=False`` argument;
    ``made(cls)`` runs after each wrapper is made."""
    thread = thread_module()

    @wrapt.decorator
    def init_with_thread_sharing(wrapped, instance, args, kwargs):
        if len(args) > 2:  # __init__(settings_dict, alias, allow_thread_sharing)
            args, allow_thread_sharing = args[:2], args[2]
        else:
            allow_thread_sharing = kwargs.pop("allow_thread_sharing", False)
        result = wrapped(*args, **kwargs)
        instance._thread_ident = thread.get_ident()
        instance.allow_thread_sharing = allow_thread_sharing
        made(type(instance))
        return result

    return init_with_thread_sharing


def make_guarded_by_thread_sharing():
    thread = thread_module()

    @wrapt.decorator
    def guarded_by_thread_sharing(wrapped, instance, args, kwargs):
        """A wrapper method that first checks the calling thread may use this wrapper; in
        observe mode, another thread's call is recorded and made on the caller's own wrapper
        for that database, as Django 1.3's thread-local wrapper made it (observe.py)."""
        if OBSERVING[0]:
            # The thread compared once: validate_thread_sharing() would compare it again.
            if instance.__dict__.get("_thread_ident") != thread.get_ident():
                if not instance.__dict__.get("allow_thread_sharing"):
                    observe.record(instance, wrapped.__name__)
                # Read from sys.modules, not imported: Python 2 takes its import lock for every
                # import statement, and the owner thread may hold it (a module being imported
                # that waits for this thread).
                twin = observe.own_twin(instance, sys.modules["django.db"].connections)
                return getattr(twin, wrapped.__name__)(*args, **kwargs)
        else:
            instance.validate_thread_sharing()
        return wrapped(*args, **kwargs)

    return guarded_by_thread_sharing


guarded_by_thread_sharing = make_guarded_by_thread_sharing()


class SqliteModuleWithSharedConnections(wrapt.ObjectProxy):
    """The sqlite3 DB-API module as a Django backend sees it, opening shareable connections.

    Django 1.4 opens every sqlite connection with ``check_same_thread=False`` and guards
    sharing at the wrapper level instead (``allow_thread_sharing``); without it an in-memory
    database could never be handed to another thread.
    """

    def connect(self, *args, **kwargs):
        if OBSERVING[0]:
            # Observe mode changes nothing a query sees: Django 1.3's sqlite connections refuse
            # other threads (a cursor handed over raises ProgrammingError), and so do these.
            return self.__wrapped__.connect(*args, **kwargs)
        if kwargs.get("check_same_thread"):
            warnings.warn(
                "The `check_same_thread` option was provided and set to "
                "True. It will be overriden with False. Use the "
                "`DatabaseWrapper.allow_thread_sharing` property instead "
                "for controlling thread shareability.",
                RuntimeWarning,
            )
        kwargs["check_same_thread"] = False
        return self.__wrapped__.connect(*args, **kwargs)


def is_sqlite_dbapi(module):
    return getattr(module, "__name__", None) in ("sqlite3.dbapi2", "pysqlite2.dbapi2", "sqlite3")


# -- rebuilding the classes ---------------------------------------------------------------------

_OBJECT_CLASS = object.__dict__["__class__"]


class ClassOfRebuilt(object):
    """The ``__class__`` of instances of rebuilt classes.

    While the backport is installed it is their own class, as usual. Once it is uninstalled, the
    module globals name the original classes again, and a wrapper made meanwhile, still held by
    someone (or a call in flight in another thread), meets ``super(DatabaseWrapper, self)`` and
    ``BaseDatabaseWrapper.close(self)`` with the *original* classes: from then on its
    ``__class__`` is the original class it was rebuilt from, which is what Python 2's
    ``super()`` and unbound methods check, so it can still be used and closed.
    """

    def __init__(self, rebuilder):
        self.rebuilder = rebuilder

    def __get__(self, instance, owner):
        if instance is None:
            return self
        if self.rebuilder.retired:
            return self.rebuilder.original_of_type(type(instance))
        return type(instance)

    def __set__(self, instance, value):
        _OBJECT_CLASS.__set__(instance, value)


class ClassRebuilder(object):
    """Builds, once per class and process, a copy of each DatabaseWrapper class without its
    thread-local base. Installing again (after uninstall) reuses the classes already built,
    unless the original class changed meanwhile: a call that began under one installation and
    goes on under the next meets the same classes.

    ``base`` is BaseDatabaseWrapper as Django defines it and ``local_base`` the thread-local
    class it derives from (``threading.local``, or gevent's when gevent patched first).
    ``converted`` maps every original class to its rebuilt class. With ``guarded`` method names
    (when thread sharing is missing too), the rebuilt base class also gets Django 1.4's
    ``allow_thread_sharing`` / ``validate_thread_sharing()``, and every class's own definition
    of a guarded method checks the calling thread first. ``made(cls)`` runs when an instance
    of a class deriving from the rebuilt base is made (wherever that class was loaded, before
    install or after).
    """

    def __init__(self, base, local_base, guarded=(), database_error=None,
                 made=lambda cls: None):
        self.base = base
        self.local_base = local_base
        self.guarded = guarded
        self.database_error = database_error
        self.made = made
        self.converted = {}
        self.originals = {}  # rebuilt class -> original class
        self.namespaces = {}  # rebuilt class -> the namespace it was given
        self.built_from = {}  # original class -> (its namespace, its bases) when rebuilt
        self.retired = True  # while no installation uses the classes: see ClassOfRebuilt
        self.translate = Translator(self.converted.get)

    def is_wrapper_class(self, cls):
        """An original DatabaseWrapper class (never an old-style class, never a rebuilt one,
        never a proxy class of captured references)."""
        return (
            isinstance(cls, type)
            and issubclass(cls, self.base)
            and PROXY_MARK not in vars(cls)
        )

    def needs_rebuild(self, cls):
        return cls not in self.converted and self.is_wrapper_class(cls)

    def loaded_classes(self):
        """The base and every subclass Python has loaded so far, parents before children."""
        found, pending = [], [self.base]
        while pending:
            cls = pending.pop(0)
            if cls in found or not self.is_wrapper_class(cls):
                continue
            found.append(cls)
            pending.extend(type.__subclasses__(cls))
        return found

    def check(self, cls):
        """Raise UnknownLayout if ``cls`` (or a parent) cannot be rebuilt."""
        for klass in cls.__mro__:
            if not self.is_wrapper_class(klass):
                if klass is not self.local_base and isinstance(klass, type) and issubclass(
                    klass, self.local_base
                ):
                    raise UnknownLayout(
                        "%s derives from %s.%s, a thread-local class that is not a "
                        "DatabaseWrapper" % (_name(cls), klass.__module__, klass.__name__)
                    )
                continue
            if "__slots__" in vars(klass):
                raise UnknownLayout("%s defines __slots__" % _name(klass))

    def rebuild(self, cls):
        """The rebuilt class for ``cls`` (rebuilding its parents first)."""
        if not self.is_wrapper_class(cls):
            return self.converted.get(cls, cls)
        self.check(cls)
        bases = []
        for base in cls.__bases__:
            if base is self.local_base:
                bases.append(object)
            elif self.is_wrapper_class(base):
                bases.append(self.rebuild(base))
            else:
                bases.append(base)  # a mixin, old-style or not: kept as it is
        if len(bases) > 1 and object in bases:
            # Another new-style base brings object last in the MRO anyway; old-style ones
            # only (a classic mixin) need it, last, so that their methods come first.
            bases = [b for b in bases if b is not object]
            if not any(isinstance(b, type) for b in bases):
                bases.append(object)
        built = self.built_from.get(cls)
        if built is not None and built[1] == tuple(bases) and _same_namespace(
            built[0], vars(cls)
        ):
            return self.converted[cls]
        try:
            # The class exists (and is known as rebuilt) before its namespace is translated,
            # so that what refers to the original class itself names the rebuilt one.
            made = {"__module__": cls.__module__, "__doc__": cls.__doc__}
            if cls is self.base:
                made["__class__"] = ClassOfRebuilt(self)
            new = type(cls)(cls.__name__, tuple(bases), made)
            self.converted[cls] = new
            self.originals[new] = cls
            namespace = dict(
                (name, self.translate(value)) for name, value in vars(cls).items()
                if name not in ("__dict__", "__weakref__", "__module__", "__doc__")
            )
            if self.guarded:
                self._add_thread_sharing(cls, namespace)
            for name, value in namespace.items():
                if name == "__new__" and isinstance(value, types.FunctionType):
                    value = staticmethod(value)  # what class creation does with __new__
                setattr(new, name, value)
            namespace.update(made)
        except BaseException:
            self.originals.pop(self.converted.pop(cls, None), None)
            raise
        self.namespaces[new] = dict(vars(new))
        self.built_from[cls] = (dict(vars(cls)), tuple(bases))
        return new

    def defined_on_rebuilt(self):
        """The classes deriving from rebuilt classes that are neither rebuilt nor originals:
        defined while installed (a backend first imported then), parents first."""
        found, pending = set(), list(self.originals)
        while pending:
            for sub in type.__subclasses__(pending.pop()):
                if sub not in found and sub not in self.originals and (
                    PROXY_MARK not in vars(sub)
                ):
                    found.add(sub)
                    pending.append(sub)
        return sorted(found, key=lambda cls: (len(cls.__mro__), _name(cls)))

    def unrebuild(self, cls):
        """``cls``, defined on rebuilt classes while installed, made again on their originals:
        a threading.local DatabaseWrapper class, as unpatched Django's are. The pair is kept
        as if ``cls`` had been rebuilt from it, so that the next installation uses ``cls``
        again (and its instances report the new class once retired, see ClassOfRebuilt)."""
        back = Translator(self.originals.get)
        bases = tuple(self.originals.get(base, base) for base in cls.__bases__)
        made = {"__module__": cls.__module__, "__doc__": cls.__doc__}
        new = type(cls)(cls.__name__, bases, made)
        for name, value in list(vars(cls).items()):
            if name in ("__dict__", "__weakref__", "__module__", "__doc__"):
                continue
            value = back(value)
            if name == "__new__" and isinstance(value, types.FunctionType):
                value = staticmethod(value)  # what class creation does with __new__
            setattr(new, name, value)
        self.converted[new] = cls
        self.originals[cls] = new
        self.namespaces[cls] = dict(vars(cls))
        self.built_from[new] = (dict(vars(new)), tuple(cls.__bases__))
        return new

    def carried_back(self, original, name, value):
        """``value`` was set on ``original`` from its rebuilt class at uninstall: both agree."""
        self.built_from[original][0][name] = value
        self.namespaces[self.converted[original]][name] = value

    def forget_change(self, new, name):
        """Undo what someone set on (or deleted from) the rebuilt class ``new`` after it was
        built, so that the next installation starts from what it was built with."""
        built = self.namespaces[new]
        if name in built:
            setattr(new, name, built[name])
        elif name in vars(new):
            delattr(new, name)

    def original_of_type(self, cls):
        """The original class of a rebuilt class, or of the nearest rebuilt class it derives
        from (a subclass made after install); ``cls`` itself if none."""
        for klass in cls.__mro__:
            original = self.originals.get(klass)
            if original is not None:
                return original
        return cls

    def changed_since_built(self):
        """(rebuilt class, name, value or None if deleted) for what someone set on or deleted
        from a rebuilt class after it was built."""
        changes = []
        for new, namespace in self.namespaces.items():
            now = vars(new)
            for name in sorted(set(now) | set(namespace)):
                if name in ("__dict__", "__weakref__", "__module__", "__doc__"):
                    continue
                if name not in now:
                    changes.append((new, name, None))
                elif namespace.get(name, _MISSING) is not now[name]:
                    changes.append((new, name, now[name]))
        return changes

    def _add_thread_sharing(self, cls, namespace):
        for name in self.guarded:
            if name in namespace:
                namespace[name] = guarded_by_thread_sharing(namespace[name])
        if cls is self.base:
            namespace["__init__"] = make_init_with_thread_sharing(self.made)(
                namespace["__init__"]
            )
            namespace["validate_thread_sharing"] = make_validate_thread_sharing(
                self.database_error
            )


_MISSING = object()


def _same_namespace(old, now):
    return set(old) == set(now) and all(old[name] is now[name] for name in old)


def _name(cls):
    return "%s.%s" % (cls.__module__, cls.__name__)


# -- legacy references to the old wrappers ------------------------------------------------------

def _refuse_copy(*args):
    raise TypeError(
        "connlocal_shim: this object stands for the current thread's connection and cannot be "
        "pickled or copied; pickle connections[alias].settings_dict instead"
    )


_REFUSED = frozenset(["__reduce_ex__", "__reduce__", "__getstate__", "__copy__", "__deepcopy__"])


def captured_wrapper_proxy_class(original_class, alias, storage, handler):
    """The class an old wrapper object gets: it acts as the current thread's connections[alias].

    It subclasses the object's own class (so ``__class__`` may be assigned on a
    ``threading.local`` instance) and forwards attribute reads, writes, ``repr``, ``==``,
    ``dir()`` and ``isinstance`` (through ``__class__``) to the wrapper the current thread
    uses for ``alias``; pickling and copying are refused. Its hash is its own (the object's
    identity), stable across threads and routing, as Django 1.4's proxy's is.
    """
    by_ident = storage.by_ident
    # The thread module's namespace, where a monkey patch of get_ident writes: read on every
    # call by subscript (cheaper than the attribute on Python 2), as the handler does.
    namespace = vars(thread_module())

    def current():
        try:
            return by_ident[namespace["get_ident"]()][alias]
        except KeyError:
            return handler[alias]

    # The hot path of every django.db.connection.<attr>: what it needs is bound as defaults
    # (local variables, cheaper to read than globals and builtins).
    def __getattribute__(self, name, by_ident=by_ident, namespace=namespace, alias=alias,
                         refused=_REFUSED, getattr=getattr):
        try:
            wrapper = by_ident[namespace["get_ident"]()][alias]
        except KeyError:
            wrapper = handler[alias]
        if name in refused:
            return _refuse_copy
        return getattr(wrapper, name)

    def __setattr__(self, name, value):
        setattr(current(), name, value)

    def __delattr__(self, name):
        delattr(current(), name)

    def __init__(self, *args, **kwargs):
        # threading.local calls __init__ again in each new thread that touches the object's
        # own storage; the proxy has no state of its own, so there is nothing to set up.
        pass

    namespace = {
        "__doc__": "Stands for the current thread's connections[%r] (connlocal_shim)." % alias,
        "__module__": __name__,
        PROXY_MARK: alias,
        "__getattribute__": __getattribute__,
        "__setattr__": __setattr__,
        "__delattr__": __delattr__,
        "__init__": __init__,
        "__repr__": lambda self: repr(current()),
        "__eq__": lambda self, other: current() == other,
        "__ne__": lambda self, other: current() != other,
        "__hash__": object.__hash__,
        "__dir__": lambda self: dir(current()),
        "__reduce_ex__": _refuse_copy,
        "__reduce__": _refuse_copy,
    }
    return type(original_class)("CapturedConnectionProxy", (original_class,), namespace)


def proxied_alias(value):
    """The alias a captured-reference proxy stands for, or None if ``value`` is not one."""
    return vars(type(value)).get(PROXY_MARK) if hasattr(type(value), "__dict__") else None


# -- moving a thread's connection state between wrappers ---------------------------------------

def point_helpers(state, source, target):
    """The helper objects of a wrapper's ``state`` (ops, creation, features...) whose
    ``.connection`` back-reference is ``source`` now refer to ``target``."""
    for value in list(state.values()):
        helper_state = getattr(value, "__dict__", None)
        if isinstance(helper_state, dict) and helper_state.get("connection") is source:
            helper_state["connection"] = target


def move_state(state, source, target, drop=()):
    """Give ``target`` a thread's ``state`` of ``source`` (a copy of its ``__dict__``): its open
    DB-API connection, transaction state, queries log and helper objects, pointed at
    ``target``.
    """
    state = dict(state)
    for name in drop:
        state.pop(name, None)
    point_helpers(state, source, target)
    target_state = vars(target)
    target_state.clear()
    target_state.update(state)
