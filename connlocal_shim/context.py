"""Where route_connections keeps its state: per thread, or per context (asyncio task).

Up to Django 2.2 connections live in a threading.local, and route_connections re-points an
alias with ``connections[alias] = wrapper`` for the thread; the blocks a thread has entered are
its list of frames (:data:`THREAD_FRAMES`, per greenlet under gevent/eventlet). Django 3.0+ keeps
connections in asgiref's ``Local(thread_critical=True)``: an async view's ORM calls run in a
sync_to_async thread that never sees what its task set there, and tasks that share that thread
would see each other's. There route_connections keeps an overlay ``{alias: target}`` in a
ContextVar, which follows the task into sync_to_async and async_to_sync, and the handler
consults it first (:func:`context_routing_handler_class`, applied through the registry on first
use); the frames of the context's blocks are kept in the overlay too.
"""
from connlocal_shim.identity import PerThread

try:
    import contextvars
except ImportError:  # Python < 3.7: per-thread routing only
    contextvars = None

# Each thread's (greenlet's) list of route_connections frames, outermost first.
THREAD_FRAMES = PerThread(list)

# The context's overlay {alias: target}; under the key None, its innermost open block's frame,
# which links to the overlay below it (a compact frame is a tuple (block, overlay below); a
# routing._Frame has it as previous_routes): one ContextVar, set once per block entered or left.
FRAMES = None
if contextvars is not None:
    ROUTES = contextvars.ContextVar("connlocal_shim_routes", default=None)
else:
    ROUTES = None


def context_frames(routes):
    """The frames of an overlay's open blocks, outermost first (see ROUTES)."""
    chain = []
    frame = routes.get(FRAMES) if routes else None
    while frame is not None:
        chain.append(frame)
        below = frame[1] if type(frame) is tuple else frame.previous_routes
        frame = below.get(FRAMES) if below else None
    chain.reverse()
    return tuple(chain)


class OwnAlias(object):
    """An overlay target: the looking-up thread's own connection to ``alias``."""

    __slots__ = ("alias",)

    def __init__(self, alias):
        self.alias = alias

    def __repr__(self):
        return "OwnAlias(%r)" % (self.alias,)


# Where Django 3.0-6.1 define the ConnectionHandler.__getitem__ whose first step is
# ``getattr(self._connections, alias)`` (django.db.utils up to 3.1, then BaseConnectionHandler).
DJANGO_GETITEM_MODULES = ("django.db.utils", "django.utils.connection")


def context_routing_handler_class(handler_class):
    """A subclass of the (native) connections handler whose ``__getitem__`` first consults the
    context's overlay. Without routing, the cost is one ContextVar lookup."""
    native_getitem = handler_class.__getitem__
    routes_var = ROUTES
    # Django 3.0-6.1's __getitem__ first returns the wrapper the Local holds, and only creates
    # one when it holds none. When the native method is one of those, the overlay takes that
    # first step itself (saving a call on every query once routing is used) and leaves the
    # rest to Django. Any other __getitem__ (a subclass of someone else's) is always called.
    inline_first_step = getattr(native_getitem, "__module__", None) in DJANGO_GETITEM_MODULES

    class ContextRoutedConnectionHandler(handler_class):
        """django.db.connections, routed per asyncio task by connlocal_shim.route_connections."""

        def __getitem__(self, alias):
            routes = routes_var.get()
            if routes:
                target = routes.get(alias)
                if target is not None:
                    if type(target) is OwnAlias:
                        return native_getitem(self, target.alias)
                    return target
            if inline_first_step:
                try:
                    return getattr(self._connections, alias)
                except AttributeError:
                    pass  # the thread's first use of alias: Django creates the connection
            return native_getitem(self, alias)

        def own(self, alias):
            """The calling thread's own connection to ``alias``, whatever is routed."""
            return native_getitem(self, alias)

    ContextRoutedConnectionHandler.__module__ = __name__
    return ContextRoutedConnectionHandler
