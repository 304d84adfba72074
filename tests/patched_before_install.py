"""What tools that patch Django at import do to the wrapper classes, done here before
install() as an app listed before connlocal_shim (or imported by settings) would:

- django-debug-toolbar 0.9.x's SQL panel (``replace_call``): a closure that keeps the *unbound*
  method ``BaseDatabaseWrapper.cursor`` and calls it with the wrapper;
- a module global keeping an unbound method (``_original_close = BaseDatabaseWrapper.close``)
  that the replacement calls;
- a class reference in a closure (``super(SqliteWrapper, self)``), a default argument holding
  an unbound method, a classmethod, a staticmethod and a property;
- wrapt, as instrumentation agents use it: a FunctionWrapper around an unbound method.

``CALLS`` counts what each patch saw.
"""
import wrapt
from django.db.backends import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import DatabaseWrapper as SqliteWrapper

CALLS = {"cursor": 0, "close": 0, "super": 0, "default": 0, "wrapt": 0}


def replace_call(func):  # django-debug-toolbar 0.9.4, debug_toolbar/utils/tracking
    def inner(callback):
        def wrapped(*args, **kwargs):
            return callback(func, *args, **kwargs)

        setattr(func.im_class, func.im_func.__name__, wrapped)
        return wrapped

    return inner


def counting_cursor(func, self):
    CALLS["cursor"] += 1
    return func(self)


replace_call(BaseDatabaseWrapper.cursor)(counting_cursor)

_original_close = BaseDatabaseWrapper.close


def close(self):
    CALLS["close"] += 1
    return _original_close(self)


BaseDatabaseWrapper.close = close


def make_rollback(cls):
    def _rollback(self):
        CALLS["super"] += 1
        return super(cls, self)._rollback()

    return _rollback


SqliteWrapper._rollback = make_rollback(SqliteWrapper)


def _commit(self, original=BaseDatabaseWrapper._commit):
    CALLS["default"] += 1
    return original(self)


SqliteWrapper._commit = _commit
SqliteWrapper.vendor_label = classmethod(lambda cls: cls.__name__)
SqliteWrapper.answer = staticmethod(lambda: 42)
SqliteWrapper.closed_yet = property(lambda self: self.connection is None)


def counting(wrapped, instance, args, kwargs):
    CALLS["wrapt"] += 1
    return wrapped(*args, **kwargs)


# A wrapper around the unbound method (what getattr on the class gives), not the function.
SqliteWrapper.counted_hook = wrapt.FunctionWrapper(
    BaseDatabaseWrapper._enter_transaction_management, counting
)
