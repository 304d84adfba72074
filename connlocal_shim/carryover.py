"""What a rebuilt DatabaseWrapper class carries over from its original, made to work with the
rebuilt classes.

A class's namespace holds more than plain functions. Tools that patch Django at import put there
closures that keep the original class's *unbound* method (django-debug-toolbar 0.9's SQL panel
wraps ``BaseDatabaseWrapper.cursor`` so), class references (``super(OriginalClass, self)`` in a
closure), default arguments, classmethods, staticmethods, properties and wrapt function
wrappers. On Python 2 an unbound method checks its first argument's class, so a copy of the
original's namespace would fail with instances of the rebuilt class (``TypeError: unbound method
cursor() must be called with BaseDatabaseWrapper instance``). :class:`Translator` copies such
values, with every reference to an original class replaced by its rebuilt class, and leaves
everything else (the same objects) alone.
"""
import functools
import types

from connlocal_shim.compat import PY2

try:
    import wrapt
except ImportError:  # pragma: no cover (a dependency of the package)
    wrapt = None


def _cell(value):
    return (lambda: value).__closure__[0]


def _empty_cell():
    if False:  # pragma: no cover (never runs: the variable stays unbound)
        unbound = None
    return (lambda: unbound).__closure__[0]


def _cell_contents(cell):
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a variable the closure never bound)
        return _EMPTY


_EMPTY = object()


def _same(old, new):
    return len(old) == len(new) and all(a is b for a, b in zip(old, new))


class Translator(object):
    """``translate(value)``: ``value``, or a copy of it whose references to classes mapped by
    ``class_for(cls)`` (None for a class it does not map) name the mapped classes. Copies are
    made once per object (a memo keyed by identity keeps the originals alive meanwhile).
    """

    def __init__(self, class_for):
        self.class_for = class_for
        self._memo = {}

    def __call__(self, value):
        key = id(value)
        done = self._memo.get(key)
        if done is not None:
            return done[1]
        self._memo[key] = (value, value)  # while translating: a cycle leads back here
        result = self._translate(value)
        self._memo[key] = (value, result)
        return result

    def _translate(self, value):
        # type(), not isinstance(): a wrapt proxy answers isinstance() for what it wraps.
        kind = type(value)
        if wrapt is not None and kind is wrapt.FunctionWrapper:
            wrapped, wrapper = value.__wrapped__, value._self_wrapper
            new_wrapped, new_wrapper = self(wrapped), self(wrapper)
            if new_wrapped is wrapped and new_wrapper is wrapper:
                return value
            return wrapt.FunctionWrapper(new_wrapped, new_wrapper, value._self_enabled)
        if isinstance(kind, type) and issubclass(kind, type):
            mapped = self.class_for(value)
            return value if mapped is None else mapped
        if kind is types.FunctionType:
            return self._function(value)
        if kind is types.MethodType:
            return self._method(value)
        if issubclass(kind, (classmethod, staticmethod)):
            func = value.__func__
            new = self(func)
            return value if new is func else type(value)(new)
        if issubclass(kind, property):
            parts = (value.fget, value.fset, value.fdel)
            new = tuple(None if part is None else self(part) for part in parts)
            return value if _same(parts, new) else type(value)(new[0], new[1], new[2], value.__doc__)
        if kind is functools.partial:
            old_keywords = value.keywords or {}
            func, args = self(value.func), tuple(self(arg) for arg in value.args)
            keywords = dict((name, self(arg)) for name, arg in old_keywords.items())
            if func is value.func and _same(value.args, args) and all(
                keywords[name] is arg for name, arg in old_keywords.items()
            ):
                return value
            return functools.partial(func, *args, **keywords)
        if kind is tuple:
            new = tuple(self(item) for item in value)
            return value if _same(value, new) else new
        return value

    def _function(self, func):
        defaults = func.__defaults__ or ()
        new_defaults = tuple(self(default) for default in defaults)
        cells = func.__closure__ or ()
        contents = [_cell_contents(cell) for cell in cells]
        new_contents = [item if item is _EMPTY else self(item) for item in contents]
        attributes = dict(vars(func))
        new_attributes = dict((name, self(item)) for name, item in attributes.items())
        kwdefaults = getattr(func, "__kwdefaults__", None) or {}  # Python 3
        new_kwdefaults = dict((name, self(item)) for name, item in kwdefaults.items())
        unchanged = (
            _same(defaults, new_defaults)
            and _same(contents, new_contents)
            and all(new_attributes[name] is item for name, item in attributes.items())
            and all(new_kwdefaults[name] is item for name, item in kwdefaults.items())
        )
        if unchanged:
            return func
        closure = tuple(
            _empty_cell() if item is _EMPTY else _cell(item) for item in new_contents
        ) or None
        new = types.FunctionType(
            func.__code__, func.__globals__, func.__name__, new_defaults or None, closure
        )
        new.__dict__.update(new_attributes)
        new.__doc__ = func.__doc__
        new.__module__ = func.__module__
        if not PY2:
            new.__qualname__ = func.__qualname__
            new.__kwdefaults__ = new_kwdefaults or None
            new.__annotations__ = dict(func.__annotations__)
        return new

    def _method(self, method):
        func, bound_to = method.__func__, method.__self__
        new_func = self(func)
        if bound_to is None:  # an unbound method (Python 2): it checks its class
            klass = method.im_class
            new_class = self(klass)
            if new_func is func and new_class is klass:
                return method
            return types.MethodType(new_func, None, new_class)
        new_bound_to = self(bound_to)  # a classmethod bound to a class, or a bound method
        if new_func is func and new_bound_to is bound_to:
            return method
        if PY2:
            return types.MethodType(new_func, new_bound_to, type(new_bound_to))
        return types.MethodType(new_func, new_bound_to)
