"""What the running Django has, and what it lacks, of Django 1.4's thread-local connections.

``detect()`` probes the running Django once and returns a plain :class:`Features` record. It
imports Django but patches nothing; ``backport`` decides from the record what to patch, and the
status command and system checks show it. Every probe asks Django what it has (never which
version it is): the comments say which Django release and ticket a branch comes from.
"""
import threading

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
        self.guarded_methods = found.get("guarded_methods", ())


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


def _storage_is_thread_local(storage):
    if isinstance(storage, threading.local):
        return True
    # asgiref.local.Local (Django 3.0+) is thread- and task-local without subclassing local.
    return type(storage).__module__.startswith("asgiref.")


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
        features.async_local = not isinstance(storage, threading.local)
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
    if base_wrapper is None:
        features.problems.append("BaseDatabaseWrapper not found in django.db.backends")
    else:
        has_local = threading.local in base_wrapper.__mro__
        features.wrappers_without_local = _state(not has_local)
        if has_local and threading.local not in base_wrapper.__bases__:
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
        guarded_methods=features.targets.guarded_methods,
    )
    return features
