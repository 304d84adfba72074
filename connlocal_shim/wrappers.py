"""DatabaseWrapper classes without threading.local, with Django 1.4's thread-sharing API.

Before Django 1.4 every DatabaseWrapper class derived from ``threading.local``, so each thread
silently saw its own state inside one shared object. Python 2 cannot reassign ``__bases__`` away
from ``thread._local`` (the layouts differ), so :class:`ClassRebuilder` builds a new class for
each one, with the same namespace and ``object`` in place of ``threading.local``. The backport
then rebinds the module globals that name the old classes, which keeps
``super(DatabaseWrapper, self)`` and ``BaseDatabaseWrapper.close(self)`` working: both look the
class up in module globals at call time.

Old wrapper objects that Django and user modules captured before install (``django.db.connection``
first of all) become :func:`captured_wrapper_proxy_class` instances: their class is swapped for a
subclass that forwards everything to the current thread's ``connections[alias]``.
"""
import threading
import warnings

import wrapt

from connlocal_shim.compat import get_ident


# -- thread sharing (Django 1.4, ticket #17258) ------------------------------------------------

def make_validate_thread_sharing(database_error):
    def validate_thread_sharing(self):
        """
        Validates that the connection isn't accessed by another thread than the
        one which originally created it, unless the connection was explicitly
        authorized to be shared between threads (via the `allow_thread_sharing`
        property). Raises an exception if the validation fails.
        """
        # The wording is Django 1.4's, so that code matching on it keeps working when the
        # site upgrades.
        if not self.allow_thread_sharing and self._thread_ident != get_ident():
            raise database_error(
                "DatabaseWrapper objects created in a "
                "thread can only be used in that same thread. The object "
                "with alias '%s' was created in thread id %s and this is "
                "thread id %s." % (self.alias, self._thread_ident, get_ident())
            )

    return validate_thread_sharing


@wrapt.decorator
def init_with_thread_sharing(wrapped, instance, args, kwargs):
    """BaseDatabaseWrapper.__init__ with Django 1.4's ``allow_thread_sharing=False`` argument."""
    if len(args) > 2:  # __init__(settings_dict, alias, allow_thread_sharing)
        args, allow_thread_sharing = args[:2], args[2]
    else:
        allow_thread_sharing = kwargs.pop("allow_thread_sharing", False)
    result = wrapped(*args, **kwargs)
    instance._thread_ident = get_ident()
    instance.allow_thread_sharing = allow_thread_sharing
    return result


@wrapt.decorator
def guarded_by_thread_sharing(wrapped, instance, args, kwargs):
    """A wrapper method that first checks the calling thread may use this wrapper."""
    instance.validate_thread_sharing()
    return wrapped(*args, **kwargs)


class SqliteModuleWithSharedConnections(wrapt.ObjectProxy):
    """The sqlite3 DB-API module as a Django backend sees it, opening shareable connections.

    Django 1.4 opens every sqlite connection with ``check_same_thread=False`` and guards
    sharing at the wrapper level instead (``allow_thread_sharing``); without it an in-memory
    database could never be handed to another thread.
    """

    def connect(self, *args, **kwargs):
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

class ClassRebuilder(object):
    """Builds, once per class, a copy of each DatabaseWrapper class without threading.local.

    ``converted`` maps every original class to its rebuilt class. With ``guarded`` method names
    (when thread sharing is missing too), the rebuilt base class also gets Django 1.4's
    ``allow_thread_sharing`` / ``validate_thread_sharing()``, and every class's own definition
    of a guarded method checks the calling thread first.
    """

    def __init__(self, base, guarded=(), database_error=None, skip=lambda cls: False):
        self.base = base
        self.guarded = guarded
        self.database_error = database_error
        self.skip = skip  # a predicate for classes that must not be rebuilt (our proxy classes)
        self.converted = {}

    def needs_rebuild(self, cls):
        return threading.local in cls.__mro__ and not self.skip(cls)

    def loaded_classes(self):
        """The base and every subclass Python has loaded so far, parents before children."""
        found, pending = [], [self.base]
        while pending:
            cls = pending.pop(0)
            if cls in found or not self.needs_rebuild(cls):
                continue
            found.append(cls)
            pending.extend(type.__subclasses__(cls))
        return found

    def rebuild(self, cls):
        """The rebuilt class for ``cls`` (rebuilding its parents first)."""
        if cls in self.converted:
            return self.converted[cls]
        if not self.needs_rebuild(cls):
            return cls
        bases = [object if b is threading.local else self.rebuild(b) for b in cls.__bases__]
        if len(bases) > 1:  # (object, Mixin) has no consistent MRO: object comes last anyway
            bases = [b for b in bases if b is not object] or [object]
        namespace = dict(
            (name, value) for name, value in vars(cls).items()
            if name not in ("__dict__", "__weakref__")
        )
        if self.guarded:
            self._add_thread_sharing(cls, namespace)
        new = type(cls)(cls.__name__, tuple(bases), namespace)
        self.converted[cls] = new
        return new

    def _add_thread_sharing(self, cls, namespace):
        for name in self.guarded:
            if name in namespace:
                namespace[name] = guarded_by_thread_sharing(namespace[name])
        if cls is self.base:
            namespace["__init__"] = init_with_thread_sharing(namespace["__init__"])
            namespace["validate_thread_sharing"] = make_validate_thread_sharing(
                self.database_error
            )


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
    uses for ``alias``; pickling and copying are refused.
    """

    def current():
        try:
            return storage.wrappers[alias]
        except KeyError:
            return handler[alias]

    def __getattribute__(self, name):
        try:
            wrapper = storage.wrappers[alias]
        except KeyError:
            wrapper = handler[alias]
        if name in _REFUSED:
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


# -- moving a thread's connection state between wrappers ---------------------------------------

def move_state(state, source, target, drop=()):
    """Give ``target`` a thread's ``state`` of ``source`` (a copy of its ``__dict__``): its open
    DB-API connection, transaction state, queries log and helper objects (ops, creation,
    features...), whose ``.connection`` back-references are pointed at ``target``.
    """
    state = dict(state)
    for name in drop:
        state.pop(name, None)
    for value in state.values():
        helper_state = getattr(value, "__dict__", None)
        if isinstance(helper_state, dict) and helper_state.get("connection") is source:
            helper_state["connection"] = target
    target_state = vars(target)
    target_state.clear()
    target_state.update(state)
