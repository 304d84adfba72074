"""Route every writing request to the configured databases, optionally sticky per client.

Settings::

    CONNLOCAL_SHIM = {
        "ROUTE_WRITES": {"default": "master"},   # alias -> alias, as route_connections(**...)
        "STICKY_SECONDS": 15,                     # 0 (default): only the writing request itself
        "PIN_COOKIE": "connlocal_pin",            # the cookie that pins a client after a write
        "REPLICA_DOWNTIME": 60,                   # 0 (default): no fallback (see below)
    }
    MIDDLEWARE = ["connlocal_shim.middleware.ConnectionPinningMiddleware", ...]
    # or MIDDLEWARE_CLASSES on Django before 1.10: the same class works in both.

A request with an unsafe method (POST, PUT, PATCH, DELETE) runs with its aliases re-pointed
(for its thread only), including while a streaming response's content is produced; with
STICKY_SECONDS, the client's next requests for that many seconds are routed too, so it reads
its own writes (the pinning of django-multidb-router). Routing is restored even when the view
raises. A misconfiguration raises ImproperlyConfigured when the middleware is loaded (and shows
as a system check error on Django 1.7+).

With REPLICA_DOWNTIME, a reading request first connects each alias that ROUTE_WRITES re-points
(the replicas); one that cannot be reached has the request's reads sent where its writes go,
and so have the requests of the next REPLICA_DOWNTIME seconds, in every thread of the process,
without trying it (the downtime of django_replicated). Then the next reading request tries it
again. Going down and coming back are logged once each, at WARNING and INFO, through the
``connlocal_shim`` logger. A query that fails on a replica that went away under it fails its
request as before: the fallback is for connecting.
"""
import logging
import sys
import threading
import time

from connlocal_shim.compat import string_types
from connlocal_shim.identity import PerThread
from connlocal_shim.observe import MIDDLEWARE_CONFLICT, OBSERVE, mode_errors
from connlocal_shim.routing import RouteConnections

logger = logging.getLogger("connlocal_shim")
_clock = getattr(time, "monotonic", time.time)  # Python 2: time.time

UNSAFE_METHODS = frozenset(["POST", "PUT", "PATCH", "DELETE"])
SETTING = "CONNLOCAL_SHIM"
DEFAULT_PIN_COOKIE = "connlocal_pin"
_ROUTED = "_connlocal_shim_routed"  # request attribute: the token of the routing it entered
# Tokens of the routes process_request entered and nothing has left yet, per thread. Django skips
# process_response when the 500 handler itself fails or DEBUG_PROPAGATE_EXCEPTIONS is set (and
# then, since Django 1.5, sends no request_finished): got_request_exception, request_finished and
# the thread's next process_request leave what is still pending, so nothing routed by a request
# outlives it on its thread.
_pending = PerThread(list)


class _Token(object):
    __slots__ = ("route",)

    def __init__(self, route):
        self.route = route


def _pending_tokens():
    return _pending.current()


def leave_pending_routes(**kwargs):
    """Leave every route of this thread's requests that no response has left.

    As a request_finished receiver it runs after Django's own closer (connected earlier), which
    closed what the routed aliases pointed to, not the thread's own connections of those
    aliases: once every route is left, those are closed as Django's closer would have.
    """
    from django.core.signals import request_finished

    tokens = _pending_tokens()
    rerouted = []
    while tokens:
        route = tokens.pop().route
        route.exit()
        rerouted.extend(alias for alias, _ in route.aliases)
    if rerouted and kwargs.get("signal") is request_finished and djangos_closer_is_connected():
        close_as_django_would(rerouted)


def djangos_closer():
    """Django's request_finished receiver that closes the thread's connections:
    close_old_connections since Django 1.6, close_connection before."""
    import django.db

    return getattr(django.db, "close_old_connections", None) or django.db.close_connection


def djangos_closer_is_connected():
    """Whether request_finished still calls Django's closer: some sites disconnect it to keep
    their connections open across requests, and then nothing is closed for them either."""
    from django.core.signals import request_finished

    # Each entry of receivers starts with the lookup key (id(receiver), id(sender)) on every
    # Django 1.2-6.1 (a dispatch_uid takes the place of the id; Django connects none here).
    closer_id = id(djangos_closer())
    return any(entry[0][0] == closer_id for entry in request_finished.receivers)


def close_as_django_would(aliases):
    """Close the thread's connections of ``aliases`` as Django's closer does at
    request_finished: close_if_unusable_or_obsolete() since Django 1.6 (CONN_MAX_AGE),
    close() before."""
    from django.db import connections

    for alias in sorted(set(aliases)):
        wrapper = connections[alias]
        close = getattr(wrapper, "close_if_unusable_or_obsolete", None) or wrapper.close
        close()


class PinningConfig(object):
    """The middleware's settings, validated."""

    def __init__(self, route_writes, sticky_seconds, pin_cookie, replica_downtime=0):
        self.route_writes = route_writes
        self.sticky_seconds = sticky_seconds
        self.pin_cookie = pin_cookie
        self.replica_downtime = replica_downtime
        # The aliases a write is routed away from: the replicas, tried by reading requests.
        self.replicas = tuple(sorted(
            alias for alias, target in route_writes.items() if alias != target))


def config_errors(settings=None, middleware=True):
    """Every problem of settings.CONNLOCAL_SHIM, as sentences: for the middleware (which needs
    ROUTE_WRITES), or with ``middleware=False`` for a site that sets only MODE."""
    if settings is None:
        from django.conf import settings
    config = getattr(settings, SETTING, None)
    if not isinstance(config, dict):
        return ["settings.%s must be a dict with a 'ROUTE_WRITES' entry, such as "
                "{'ROUTE_WRITES': {'default': 'master'}}; it is %r" % (SETTING, config)]
    errors = mode_errors(config)
    if middleware and not errors and config.get("MODE") == OBSERVE and (
            backport_makes_connections_local()):
        errors.append(MIDDLEWARE_CONFLICT)
    known = getattr(settings, "DATABASES", {}) or {}
    route_writes = config.get("ROUTE_WRITES")
    if not middleware and not set(config) & set(MIDDLEWARE_KEYS):
        pass  # MODE alone: the middleware's keys are not needed
    elif not isinstance(route_writes, dict) or not route_writes:
        errors.append("%s['ROUTE_WRITES'] must be a non-empty dict of alias -> alias, such as "
                      "{'default': 'master'}; it is %r" % (SETTING, route_writes))
    else:
        for alias, target in sorted(route_writes.items()):
            for name in (alias, target):
                if not isinstance(name, string_types):
                    errors.append("%s['ROUTE_WRITES'] maps aliases (strings), not %r"
                                  % (SETTING, name))
                elif name not in known:
                    errors.append("%s['ROUTE_WRITES'] names %r, which is not in DATABASES "
                                  "(known: %s)" % (SETTING, name, ", ".join(sorted(known))))
    sticky = config.get("STICKY_SECONDS", 0)
    if isinstance(sticky, bool) or not isinstance(sticky, (int, float)) or sticky < 0:
        errors.append("%s['STICKY_SECONDS'] must be a number of seconds >= 0, not %r"
                      % (SETTING, sticky))
    cookie = config.get("PIN_COOKIE", DEFAULT_PIN_COOKIE)
    if not isinstance(cookie, string_types) or not cookie:
        errors.append("%s['PIN_COOKIE'] must be a non-empty cookie name, not %r"
                      % (SETTING, cookie))
    downtime = config.get("REPLICA_DOWNTIME", 0)
    if isinstance(downtime, bool) or not isinstance(downtime, (int, float)) or downtime < 0:
        errors.append("%s['REPLICA_DOWNTIME'] must be a number of seconds >= 0 (0: reads never "
                      "fall back), not %r" % (SETTING, downtime))
    unknown = sorted(set(config) - set(KNOWN_KEYS))
    if unknown:
        errors.append("%s has unknown keys: %s (known: %s)" % (
            SETTING, ", ".join(map(repr, unknown)), ", ".join(KNOWN_KEYS)))
    return errors


MIDDLEWARE_KEYS = ("ROUTE_WRITES", "STICKY_SECONDS", "PIN_COOKIE", "REPLICA_DOWNTIME")
KNOWN_KEYS = ("MODE", "OBSERVE_FILE") + MIDDLEWARE_KEYS


def backport_makes_connections_local():
    """Whether this Django's connections are thread-local only through the backport (Django
    1.2/1.3), where observe mode keeps them process-wide."""
    from connlocal_shim.backport import current_installation
    from connlocal_shim.features import detect

    installation = current_installation()
    features = installation.features if installation is not None else detect()
    return "thread_local_handler" in features.missing


def load_config(settings=None):
    if settings is None:
        from django.conf import settings
    errors = config_errors(settings)
    if errors:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("connlocal_shim: " + "; ".join(errors))
    config = getattr(settings, SETTING)
    return PinningConfig(
        dict(config["ROUTE_WRITES"]),
        config.get("STICKY_SECONDS", 0),
        config.get("PIN_COOKIE", DEFAULT_PIN_COOKIE),
        config.get("REPLICA_DOWNTIME", 0),
    )


# Replicas found unreachable, process-wide: {alias: the clock time until which reads skip it}.
# An alias stays here, its time past, until a reading request reaches it again.
_replicas_down = {}
_replicas_changed = {}  # {alias: the clock time it last went down or came back}
_replicas_lock = threading.Lock()


def _connect_errors(wrapper):
    """What a failed connection raises: Django's DatabaseError, and the driver's own Error
    (Django before 1.6 lets the driver's connect() errors through unwrapped)."""
    from django.db.utils import DatabaseError

    found = [DatabaseError]
    driver = getattr(wrapper, "Database", None)
    if driver is None:
        driver = getattr(sys.modules.get(type(wrapper).__module__), "Database", None)
    error = getattr(driver, "Error", None)
    if isinstance(error, type) and issubclass(error, Exception):
        found.append(error)
    return tuple(found)


def _connect(alias):
    """Open this thread's connection of ``alias`` if it is not open; return what failed, or
    None."""
    from django.db import connections

    wrapper = connections[alias]
    try:
        ensure_connection = getattr(wrapper, "ensure_connection", None)  # Django 1.6+
        if ensure_connection is not None:
            ensure_connection()
        else:
            wrapper.cursor()  # before 1.6, cursor() is what connects
    except _connect_errors(wrapper) as error:
        return error
    return None


def replicas_down(config):
    """The replicas this reading request must not read from: those in their downtime, and
    those it cannot connect to now (which then start one)."""
    down = []
    for alias in config.replicas:
        until = _replicas_down.get(alias)
        if until is not None and _clock() < until:
            down.append(alias)
            continue
        tried = _clock()
        error = _connect(alias)
        news = None
        with _replicas_lock:
            was_down = alias in _replicas_down
            # Another thread's try that began later decided since this one began: it speaks for
            # the replica (a connection made just before a shutdown began must not undo the
            # downtime that the shutdown started, nor the reverse as it comes back).
            changed = _replicas_changed.get(alias)
            stale = changed is not None and tried < changed
            if error is None:
                if not was_down:
                    continue
                if not stale:
                    del _replicas_down[alias]
                    _replicas_changed[alias] = _clock()
                    news = "up"
            elif was_down or not stale:
                _replicas_down[alias] = _clock() + config.replica_downtime
                if not was_down:
                    _replicas_changed[alias] = _clock()
                    news = "down"
            if error is not None or alias in _replicas_down:
                down.append(alias)
        if news == "up":
            logger.info("connlocal_shim: replica %r answers again; reads go back to it", alias)
        elif news == "down":
            logger.warning(
                "connlocal_shim: replica %r is unreachable (%s: %s); reads go to %r for %s s, "
                "then %r is tried again", alias, type(error).__name__, _first_line(error),
                config.route_writes[alias], config.replica_downtime, alias)
    return down


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _content_is_iterator(response):
    """An HttpResponse made from an iterator, consumed after the middleware returned: before
    Django 1.5 (StreamingHttpResponse) that was how a response streamed."""
    if getattr(response, "_base_content_is_iter", False):  # Django 1.4
        return True
    return getattr(response, "_is_string", True) is False  # Django 1.2/1.3


class ConnectionPinningMiddleware(object):
    """Routes writing requests (and, with STICKY_SECONDS, the writer's next requests) to
    CONNLOCAL_SHIM['ROUTE_WRITES']; works in MIDDLEWARE and MIDDLEWARE_CLASSES."""

    def __init__(self, get_response=None):
        from django.core.signals import request_finished

        self.get_response = get_response
        self.config = load_config()
        self.route = RouteConnections(**self.config.route_writes)
        self._fallbacks = {}  # the replicas down -> the route of a reading request then
        from django.core.signals import got_request_exception

        for signal in (request_finished, got_request_exception):
            signal.connect(
                leave_pending_routes, weak=False, dispatch_uid="connlocal_shim.middleware"
            )

    def pinned(self, request):
        if request.method in UNSAFE_METHODS:
            return True
        return bool(self.config.sticky_seconds) and self.config.pin_cookie in request.COOKIES

    def route_for(self, request):
        """The routing this request runs with, or None: ROUTE_WRITES for a pinned request;
        for a reading one, with REPLICA_DOWNTIME, the replicas that are down re-pointed where
        their writes go."""
        if self.pinned(request):
            return self.route
        if not self.config.replica_downtime:
            return None
        down = tuple(replicas_down(self.config))
        if not down:
            return None
        route = self._fallbacks.get(down)
        if route is None:
            route = self._fallbacks.setdefault(down, RouteConnections(
                **dict((alias, self.config.route_writes[alias]) for alias in down)))
        return route

    # -- MIDDLEWARE (Django 1.10+) ----------------------------------------------------------

    def __call__(self, request):
        route = self.route_for(request)
        if route is None:
            return self.get_response(request)
        route.enter()
        try:
            response = self.get_response(request)
        except BaseException:
            route.exit(body_failed=True)
            raise
        return self._leave(request, response, route)

    # -- MIDDLEWARE_CLASSES (before Django 2.0) ---------------------------------------------

    def process_request(self, request):
        leave_pending_routes()  # left over by an earlier request of this thread
        route = self.route_for(request)
        if route is not None:
            route.enter()
            token = _Token(route)
            setattr(request, _ROUTED, token)
            _pending_tokens().append(token)
        return None

    def process_exception(self, request, exception):
        # The view raised: leave now, Django may not call process_response (see _pending).
        token = self._take(request)
        if token is not None:
            token.route.exit(body_failed=True)
        return None

    def process_response(self, request, response):
        # Also called for a request that an earlier middleware answered before
        # process_request ran: then there is nothing to leave.
        token = self._take(request)
        if token is not None:
            return self._leave(request, response, token.route)
        return response

    def _take(self, request):
        """This request's token if its routing is still to be left (then it is ours to
        leave), else None."""
        token = getattr(request, _ROUTED, None)
        if token is None:
            return None
        setattr(request, _ROUTED, None)
        tokens = _pending_tokens()
        if token not in tokens:
            return None  # already left by leave_pending_routes()
        tokens.remove(token)
        return token

    # -- leaving ----------------------------------------------------------------------------

    def _leave(self, request, response, route):
        if request.method in UNSAFE_METHODS and self.config.sticky_seconds:
            response.set_cookie(
                self.config.pin_cookie, "1", max_age=int(self.config.sticky_seconds)
            )
        if getattr(response, "streaming", False):  # StreamingHttpResponse, Django 1.5+
            response.streaming_content = RoutedContent(response.streaming_content, route)
        elif _content_is_iterator(response):
            response._container = RoutedContent(response._container, route)
        else:
            route.exit()
        return response


class RoutedContent(object):
    """A response's content, produced with routing still in place: routing ends when the
    content is exhausted or when the response is closed, whichever comes first (a response
    that is closed before anyone iterates it, such as the answer to a HEAD request, too)."""

    def __init__(self, content, route):
        self.content = iter(content)
        self.route = route
        self.routed = True

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self.content)
        except BaseException:  # exhausted (StopIteration) or failed: routing ends either way
            self.close()
            raise

    next = __next__  # Python 2

    def close(self):
        if self.routed:
            self.routed = False
            try:
                close = getattr(self.content, "close", None)
                if close is not None:
                    close()
            finally:
                self.route.exit()
