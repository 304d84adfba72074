"""What the running Django has, and what it lacks, of Django 1.4's thread-local connections.

``detect()`` probes the running Django once and returns a plain :class:`Features` record. It
imports Django but patches nothing; ``backport`` decides from the record what to patch, and the
status command and system checks show it. Every probe asks Django what it has (never which
version it is): the comments say which Django release and ticket a branch comes from.
"""
import sys
import threading

try:  # Python 2
    import thread as _thread
except ImportError:  # Python 3
    import _thread

from connlocal_shim.identity import PerThread

NATIVE = "native"  # Django has it; connlocal_shim leaves it alone
MISSING = "missing"  # Django lacks it; install() backports it
UNAVAILABLE = "unavailable"  # Django lacks it and connlocal_shim does not add it there

# The methods Django 1.4 guards with validate_thread_sharing() (ticket #17258).
PUBLIC_GUARDED_METHODS = (
    "cursor", "close", "commit", "rollback", "commit_unless_managed", "rollback_unless_managed",
    "savepoint_commit", "savepoint_rollback",
)
# Django 1.2 keeps transaction state in django.db.transaction, whose commit(), rollback(),
# *_unless_managed() and savepoint_*() functions reach the wrapper only through these hooks.
HOOK_GUARDED_METHODS = (
    "cursor", "close", "_commit", "_rollback", "_savepoint_commit", "_savepoint_rollback",
)

PIECES = (
    "thread_local_handler", "handler_setitem", "handler_delitem", "wrappers_without_local",
    "thread_sharing", "connection_proxy",
)


class Targets(object):
    """The Django objects a backport patches, as found by detect() (not part of the record)."""

    def __init__(self, **found):
        self.db = found.get("db")
        self.utils = found.get("utils")
        self.connections = found.get("connections")
        self.handler_class = found.get("handler_class")
        self.base_wrapper = found.get("base_wrapper")
        # The thread-local class BaseDatabaseWrapper derives from (threading.local, or gevent's
        # or eventlet's local where they patched threading before Django was imported).
        self.local_base = found.get("local_base")
        self.guarded_methods = found.get("guarded_methods", ())
        # Django 1.2's {thread: {alias: ...}} tables of django.db.transaction, or None.
        self.transaction = found.get("transaction")
        self.transaction_tables = found.get("transaction_tables")
        self.connection_created = found.get("connection_created")


class Features(object):
    """A plain record of what the running Django has natively and what it lacks.

    Each piece of :data:`PIECES` is ``"native"`` or ``"missing"``; ``problems`` lists what a
    backport needs and was not found (a non-empty list means: unknown layout, patch nothing)::

        >>> features = detect()
        >>> features.thread_local_handler, features.problems
        ('missing', [])
    """

    def __init__(self, django_version):
        self.django_version = django_version
        self.has_connections = False
        self.thread_local_handler = None
        self.handler_setitem = None
        self.handler_delitem = None
        self.wrappers_without_local = None
        self.thread_sharing = None
        self.connection_proxy = None
        # "attribute" (allow_thread_sharing, Django 1.4-2.1), "counter" (inc_thread_sharing(),
        # Django 2.2+, ticket #29585), or None while thread sharing is missing.
        self.sharing_api = None
        # The handler keeps connections in asgiref's Local (Django 3.0+), which follows
        # contextvars: each asyncio task sees its own connections.
        self.async_local = False
        self.layout = "unknown"
        self.problems = []
        self.targets = Targets()

    @property
    def missing(self):
        """The pieces install() must backport, in the order it applies them."""
        return [name for name in PIECES if getattr(self, name) == MISSING]

    @property
    def needs_backport(self):
        return bool(self.missing)

    def as_dict(self):
        """The record as plain data (for ``connlocal_status --json`` and the compat matrix)."""
        record = dict((name, getattr(self, name)) for name in PIECES)
        record.update(
            django_version=self.django_version,
            has_connections=self.has_connections,
            sharing_api=self.sharing_api,
            async_local=self.async_local,
            layout=self.layout,
            problems=list(self.problems),
            missing=self.missing,
        )
        return record

    def __repr__(self):
        return "<Features Django %s: %s>" % (
            self.django_version,
            ", ".join("%s=%s" % (name, getattr(self, name)) for name in PIECES),
        )


def _state(has_it):
    return NATIVE if has_it else MISSING


def _find_base_wrapper():
    """BaseDatabaseWrapper, in django.db.backends (up to Django 1.7) or django.db.backends.base."""
    try:  # Django 1.8+ (backends reorganised into django.db.backends.base)
        from django.db.backends.base.base import BaseDatabaseWrapper
    except ImportError:
        try:
            from django.db.backends import BaseDatabaseWrapper
        except ImportError:
            return None
    return BaseDatabaseWrapper


# (module, name) of the C and Python thread-local classes of Python, gevent and eventlet: found
# by name too, since a monkey patch that ran after Django's import replaced the module
# attributes that would lead to the class BaseDatabaseWrapper was defined with.
KNOWN_LOCAL_CLASSES = frozenset([
    ("thread", "_local"), ("_thread", "_local"), ("_threading_local", "local"),
    ("gevent.local", "local"), ("gevent._gevent_clocal", "local"), ("gevent._local", "local"),
    ("eventlet.corolocal", "local"),
])


def thread_local_classes():
    """The thread-local classes in use now: Python's (``threading.local``, ``thread._local``),
    or gevent's and eventlet's once they patched ``threading``, and the originals gevent
    replaced."""
    found = [threading.local, _thread._local]
    for name in ("_threading_local", "gevent.local", "eventlet.corolocal"):
        module = sys.modules.get(name)
        if module is not None and isinstance(getattr(module, "local", None), type):
            found.append(module.local)
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and hasattr(monkey, "get_original"):
        for module_name, name in (("threading", "local"), (_thread.__name__, "_local")):
            try:
                found.append(monkey.get_original(module_name, name))
            except (AttributeError, ImportError, KeyError):
                pass
    return [cls for cls in found if isinstance(cls, type)]


def is_thread_local_class(cls, in_use=None):
    """Whether ``cls`` is one of the thread-local classes (see thread_local_classes)."""
    if cls in (in_use if in_use is not None else thread_local_classes()):
        return True
    return (getattr(cls, "__module__", None), getattr(cls, "__name__", None)) in KNOWN_LOCAL_CLASSES


def _is_asgiref_local(storage):
    # asgiref.local.Local (Django 3.0+) is thread- and task-local without subclassing local.
    return type(storage).__module__.startswith("asgiref.")


def _storage_is_thread_local(storage):
    # The backport's own storage (a PerThread) once installed, Python's (or gevent's) local,
    # or asgiref's Local.
    if isinstance(storage, PerThread):
        return True
    if any(is_thread_local_class(cls) for cls in type(storage).__mro__):
        return True
    return _is_asgiref_local(storage)


def _takes_sender_key(signal):
    """Whether Signal._live_receivers(self, senderkey) is Django 1.2/1.3's (the backport lets
    receivers connected for an original wrapper class hear its rebuilt class there)."""
    function = getattr(type(signal), "_live_receivers", None)
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    return code is not None and code.co_varnames[:code.co_argcount] == ("self", "senderkey")


def detect():
    """Probe the running Django and return a :class:`Features` record. Patches nothing.

    Example::

        >>> from connlocal_shim.features import detect
        >>> detect().missing         # on Django 1.3
        ['thread_local_handler', 'handler_setitem', 'handler_delitem', ...]
        >>> detect().missing         # on Django 1.4+
        []
    """
    import django

    features = Features(django.get_version())
    import django.db as db

    connections = getattr(db, "connections", None)
    if connections is None:  # Django 1.1 and earlier: one connection, no handler at all.
        features.layout = "single connection (no django.db.connections)"
        features.problems.append("django.db.connections does not exist")
        return features
    features.has_connections = True
    from django.db import utils

    handler_class = type(connections)
    storage = vars(connections).get("_connections")
    base_wrapper = _find_base_wrapper()
    default_ref = getattr(db, "connection", None)

    # The handler: a plain dict shared by all threads before Django 1.4, thread-local since
    # (ticket #17258), asgiref's Local since Django 3.0.
    if isinstance(storage, dict):
        features.thread_local_handler = MISSING
        for needed in ("ensure_defaults", "databases"):
            if not hasattr(connections, needed):
                features.problems.append("django.db.connections has no %s" % needed)
        for needed in ("load_backend", "ConnectionDoesNotExist", "DEFAULT_DB_ALIAS"):
            if not hasattr(utils, needed):
                features.problems.append("django.db.utils has no %s" % needed)
    elif storage is not None and _storage_is_thread_local(storage):
        features.thread_local_handler = NATIVE
        features.async_local = _is_asgiref_local(storage)
    else:
        features.problems.append(
            "django.db.connections keeps its connections in %s, neither a dict nor thread-local"
            % ("no _connections attribute" if storage is None else type(storage).__name__)
        )
    # Per-thread `connections[alias] = wrapper` came with the thread-local handler (#17258);
    # `del connections[alias]` with Django 1.6: the backport adds both, a native handler keeps
    # what it has.
    if features.thread_local_handler == MISSING:
        features.handler_setitem = _state(hasattr(handler_class, "__setitem__"))
        features.handler_delitem = _state(hasattr(handler_class, "__delitem__"))
    elif features.thread_local_handler == NATIVE:
        features.handler_setitem = NATIVE
        if not hasattr(handler_class, "__setitem__"):
            features.problems.append("the thread-local handler has no __setitem__")
        features.handler_delitem = NATIVE if hasattr(handler_class, "__delitem__") else UNAVAILABLE

    # The wrappers: subclasses of threading.local before Django 1.4.
    local_base = None
    if base_wrapper is None:
        features.problems.append("BaseDatabaseWrapper not found in django.db.backends")
    else:
        in_use = thread_local_classes()
        local_ancestors = [c for c in base_wrapper.__mro__ if is_thread_local_class(c, in_use)]
        has_local = bool(local_ancestors)
        features.wrappers_without_local = _state(not has_local)
        direct = [b for b in base_wrapper.__bases__ if is_thread_local_class(b, in_use)]
        if has_local and len(direct) == 1:
            local_base = direct[0]
        elif has_local:
            features.problems.append(
                "BaseDatabaseWrapper inherits threading.local through %s, not directly"
                % ", ".join(b.__name__ for b in base_wrapper.__bases__)
            )
        features.thread_sharing = _state(hasattr(base_wrapper, "validate_thread_sharing"))
        if hasattr(base_wrapper, "inc_thread_sharing"):
            features.sharing_api = "counter"
        elif features.thread_sharing == NATIVE:
            features.sharing_api = "attribute"
        if features.thread_sharing == MISSING:
            own = vars(base_wrapper)
            guarded = PUBLIC_GUARDED_METHODS if "commit" in own else HOOK_GUARDED_METHODS
            absent = [name for name in ("__init__",) + guarded if name not in own]
            if absent:
                features.problems.append(
                    "BaseDatabaseWrapper does not define %s" % ", ".join(absent)
                )
            if not hasattr(utils, "DatabaseError"):
                features.problems.append("django.db.utils has no DatabaseError")
            features.targets.guarded_methods = guarded

    # django.db.connection: the default wrapper itself before Django 1.4, a proxy since.
    # type(), not isinstance(): a redirected reference forwards __class__ to the wrapper.
    if base_wrapper is not None and issubclass(type(default_ref), base_wrapper):
        features.connection_proxy = MISSING
    elif default_ref is not None:
        features.connection_proxy = NATIVE
    else:
        features.problems.append("django.db.connection does not exist")

    # The backport comes as one piece, as ticket #17258 did: wrappers lose threading.local only
    # where the handler becomes thread-local, and thread sharing comes with rebuilt wrappers.
    if features.thread_local_handler == NATIVE:
        if features.wrappers_without_local == MISSING:
            features.problems.append("the handler is thread-local but the wrappers still are too")
        if features.connection_proxy == MISSING:
            features.problems.append(
                "the handler is thread-local but django.db.connection is still a wrapper"
            )
    if features.thread_sharing == MISSING and features.wrappers_without_local == NATIVE:
        features.problems.append(
            "DatabaseWrapper has no threading.local base and no validate_thread_sharing()"
        )

    # Signals: rebuilt classes send connection_created with themselves as sender.
    from django.db.backends.signals import connection_created

    if features.wrappers_without_local == MISSING and not _takes_sender_key(connection_created):
        features.problems.append(
            "django.dispatch.Signal._live_receivers does not take a sender key"
        )
    # Transaction state: Django 1.2 keeps it in django.db.transaction per thread and alias
    # (Django 1.3 moved it onto the wrapper); the backport keeps it with the wrapper an alias
    # serves (transactions.py).
    from django.db import transaction
    from connlocal_shim.transactions import find_tables

    transaction_tables = find_tables(transaction)
    if transaction_tables is not None and features.thread_local_handler != MISSING:
        transaction_tables = None  # a thread-local handler with Django 1.2's tables: native

    if not features.problems:
        if features.thread_local_handler == MISSING:
            features.layout = "shared dict of threading.local wrappers (before ticket #17258)"
        elif features.async_local:
            features.layout = "asgiref Local handler (thread- and task-local)"
        else:
            features.layout = "thread-local handler (ticket #17258)"

    features.targets = Targets(
        db=db,
        utils=utils,
        connections=connections,
        handler_class=handler_class,
        base_wrapper=base_wrapper,
        local_base=local_base,
        guarded_methods=features.targets.guarded_methods,
        transaction=transaction,
        transaction_tables=transaction_tables,
        connection_created=connection_created,
    )
    return features
