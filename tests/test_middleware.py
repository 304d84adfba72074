"""The pinning middleware, in both middleware styles, through Django's test client and a real
threaded WSGI server (middleware.py, checks.py)."""
import threading
import time

import pytest

import support
import web
from support import ThreadResult
from web import settings_changed

PATH = "connlocal_shim.middleware.ConnectionPinningMiddleware"
ROUTE = {"ROUTE_WRITES": {"default": "other"}}


def styles():
    from django.conf import global_settings

    found = []
    if hasattr(global_settings, "MIDDLEWARE_CLASSES"):
        found.append("MIDDLEWARE_CLASSES")
    if hasattr(global_settings, "MIDDLEWARE"):
        found.append("MIDDLEWARE")
    return found


ALL_STYLES = ("MIDDLEWARE_CLASSES", "MIDDLEWARE")


def middleware_settings(style, config=ROUTE):
    if style not in styles():
        pytest.skip("this Django has no %s setting (%s middleware)" % (
            style, "old-style" if style == "MIDDLEWARE_CLASSES" else "new-style"))
    values = {"CONNLOCAL_SHIM": config, style: [PATH]}
    if style == "MIDDLEWARE_CLASSES" and "MIDDLEWARE" in styles():
        values["MIDDLEWARE"] = None  # Django 1.10 reads MIDDLEWARE first when it is set
    return settings_changed(**values)


def client():
    from django.test import Client

    return Client()


def default_alias():
    from django.db import connections

    return connections["default"].alias


def body(response):
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8")
    return response.content.decode("utf-8")


@pytest.mark.parametrize("style", ALL_STYLES)
def test_a_write_is_routed_and_a_read_is_not(style):
    with middleware_settings(style):
        browser = client()
        assert body(browser.post("/alias/")) == "other,other"
        assert default_alias() == "default"
        assert body(browser.get("/alias/")) == "default,default"
        for method in ("put", "delete"):
            assert body(getattr(browser, method)("/alias/")) == "other,other"
    assert default_alias() == "default"


@pytest.mark.parametrize("style", ALL_STYLES)
def test_routing_is_restored_when_the_view_raises(style):
    from site_urls import ViewError

    with middleware_settings(style):
        with pytest.raises(ViewError) as raised:
            client().post("/boom/")
    assert "failed with other" in str(raised.value)
    assert default_alias() == "default"


@pytest.mark.parametrize("style", ALL_STYLES)
def test_routing_is_restored_when_django_propagates_the_exception(style):
    """DEBUG_PROPAGATE_EXCEPTIONS: Django runs no response middleware after the view raised."""
    from site_urls import ViewError

    with middleware_settings(style), settings_changed(DEBUG_PROPAGATE_EXCEPTIONS=True):
        with pytest.raises(ViewError):
            client().post("/boom/")
        assert default_alias() == "default"
        assert body(client().get("/alias/")) == "default,default"


@pytest.mark.parametrize("style", ALL_STYLES)
def test_routing_lasts_while_streaming_content_is_produced(style):
    with middleware_settings(style):
        response = client().post("/stream/")
        assert body(response) == "other;other;other;"
        response.close()
    assert default_alias() == "default"


@pytest.mark.parametrize("style", ALL_STYLES)
def test_sticky_pinning_routes_the_writers_next_reads(style):
    config = dict(ROUTE, STICKY_SECONDS=30)
    with middleware_settings(style, config):
        writer, other_client = client(), client()
        response = writer.post("/alias/")
        assert body(response) == "other,other"
        cookie = response.cookies["connlocal_pin"]
        assert int(cookie["max-age"]) == 30
        assert body(writer.get("/alias/")) == "other,other", "the writer reads its writes"
        assert body(other_client.get("/alias/")) == "default,default"
    assert default_alias() == "default"


@pytest.mark.parametrize("config,problem", [
    ({"ROUTE_WRITES": {"default": "replica"}}, "'replica', which is not in DATABASES"),
    ({"ROUTE_WRITES": {"replica": "default"}}, "'replica', which is not in DATABASES"),
    ({"ROUTE_WRITES": {}}, "must be a non-empty dict"),
    ({}, "must be a non-empty dict"),
    ("default", "must be a dict"),
    ({"ROUTE_WRITES": {"default": "other"}, "STICKY_SECONDS": -1}, "STICKY_SECONDS"),
    ({"ROUTE_WRITES": {"default": "other"}, "STICKY_SECONDS": "15"}, "STICKY_SECONDS"),
    ({"ROUTE_WRITES": {"default": "other"}, "PIN_COOKIE": ""}, "PIN_COOKIE"),
    ({"ROUTE_WRITES": {"default": "other"}, "STICKY": 5}, "unknown keys: 'STICKY'"),
    ({"ROUTE_WRITES": {"default": "other"}, "REPLICA_DOWNTIME": -1}, "REPLICA_DOWNTIME"),
    ({"ROUTE_WRITES": {"default": "other"}, "REPLICA_DOWNTIME": "60"}, "REPLICA_DOWNTIME"),
    ({"ROUTE_WRITES": {"default": "other"}, "REPLICA_DOWNTIME": True}, "REPLICA_DOWNTIME"),
    ({"ROUTE_WRITES": {"default": "other"}, "MODE": "watch"}, "['MODE'] must be one of"),
    ({"ROUTE_WRITES": {"default": "other"}, "OBSERVE_FILE": 7}, "OBSERVE_FILE"),
])
def test_a_misconfiguration_is_refused_when_the_middleware_loads(config, problem):
    from django.core.exceptions import ImproperlyConfigured

    from connlocal_shim.middleware import ConnectionPinningMiddleware

    with settings_changed(CONNLOCAL_SHIM=config):
        with pytest.raises(ImproperlyConfigured) as raised:
            ConnectionPinningMiddleware(lambda request: None)
    assert problem in str(raised.value)


def test_a_misconfiguration_is_a_system_check_error():
    try:
        from django.core.checks import run_checks
    except ImportError:
        pytest.skip("no system check framework here (django.core.checks.run_checks)")
    with settings_changed(CONNLOCAL_SHIM={"ROUTE_WRITES": {"default": "replica"}}):
        errors = [e for e in run_checks() if e.id == "connlocal_shim.E001"]
    assert len(errors) == 1 and "'replica'" in errors[0].msg
    assert [e for e in run_checks() if e.id == "connlocal_shim.E001"] == []


def test_through_a_real_threaded_wsgi_server():
    from django.core.handlers.wsgi import WSGIHandler

    style = styles()[-1]
    with middleware_settings(style, dict(ROUTE, STICKY_SECONDS=30)):
        with web.ThreadedServer(WSGIHandler()) as server:
            start = threading.Event()

            def client_thread(index):
                start.wait(30)
                seen = []
                for n in range(6):
                    method = "POST" if (n + index) % 2 else "GET"
                    status, text, _ = web.http(server.url + "/alias/", method)
                    seen.append((method, status, text))
                status, text, cookie = web.http(server.url + "/alias/", "POST")
                pinned = web.http(server.url + "/alias/", "GET", cookie.split(";")[0])
                return seen, pinned

            clients = [ThreadResult(client_thread, index) for index in range(8)]
            start.set()
            for worker in clients:
                seen, pinned = worker.result(timeout=120)
                for method, status, text in seen:
                    expected = "other,other" if method == "POST" else "default,default"
                    assert (status, text) == (200, expected), (method, status, text)
                assert pinned[:2] == (200, "other,other")
    assert default_alias() == "default"


def test_an_http_server_thread_serves_the_test_threads_in_memory_rows():
    """What Django 1.4's LiveServerTestCase needed: rows made by the test thread in an in-memory
    sqlite database, served by a real HTTP server thread through shared_connection and
    route_connections (on Django 1.2/1.3, with the backport)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections

    from connlocal_shim import route_connections, shared_connection

    memory = connections["memory"]
    own = type(memory)(memory.settings_dict, "memory")
    support.query(own, "CREATE TABLE served (x INTEGER)")
    support.query(own, "INSERT INTO served VALUES (11)")
    support.query(own, "INSERT INTO served VALUES (12)")
    django_app = WSGIHandler()
    with route_connections(memory=own), shared_connection("memory") as shared:

        def app(environ, start_response):
            with route_connections(default=shared):
                return list(django_app(environ, start_response))

        with web.ThreadedServer(app, threaded=False) as server:
            assert web.http(server.url + "/rows/")[:2] == (200, "11,12")
    own.connection.close()


# -- a route that Django's process_response skipped, left at request_finished -------------------

def middleware_connected_after_djangos_closer():
    """A pinning middleware whose request_finished receiver runs after Django's closer, as on a
    site (django.db connects its closer on import, the middleware when it loads). Django's test
    client disconnects and reconnects its closer around each request, which puts it last: take
    ours off first, so that loading the middleware connects it last again."""
    from django.core.signals import request_finished

    from connlocal_shim.middleware import ConnectionPinningMiddleware, djangos_closer

    request_finished.disconnect(dispatch_uid="connlocal_shim.middleware")
    with settings_changed(CONNLOCAL_SHIM=ROUTE):
        middleware = ConnectionPinningMiddleware()
    ids = [entry[0][0] for entry in request_finished.receivers]
    assert ids.index(id(djangos_closer())) < ids.index("connlocal_shim.middleware")
    return middleware


def post_request():
    from django.http import HttpRequest

    request = HttpRequest()
    request.method = "POST"
    return request


def finish_a_post_that_skipped_process_response(middleware):
    """In a fresh thread: use the thread's own "default" connection, route a POST, then send
    request_finished as Django does when a later middleware's process_response raised and
    process_response of ours never ran. Returns the own wrapper, the alias of what "default"
    pointed to during the request, and what it points to after request_finished."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished
    from django.db import connections

    own = connections["default"]
    support.query(own, "SELECT 1")
    middleware.process_request(post_request())
    during = connections["default"].alias
    request_finished.send(sender=WSGIHandler)
    return own, during, connections["default"]


def test_request_finished_closes_the_own_connection_of_a_route_it_leaves():
    middleware = middleware_connected_after_djangos_closer()

    def request():
        own, during, after = finish_a_post_that_skipped_process_response(middleware)
        assert during == "other"
        assert after is own, "request_finished left the routing"
        return own.connection is None

    assert support.in_thread(request), "the thread's own 'default' connection was left open"
    assert default_alias() == "default"


def test_request_finished_closes_nothing_where_djangos_closer_is_disconnected():
    """Sites that keep connections across requests disconnect Django's closer: the shim must
    not close what Django would not."""
    from django.core.signals import request_finished
    from django.db import connections

    from connlocal_shim.middleware import djangos_closer

    middleware = middleware_connected_after_djangos_closer()

    def request():
        try:
            own, during, after = finish_a_post_that_skipped_process_response(middleware)
            assert during == "other"
            assert after is own, "request_finished left the routing"
            return own.connection is not None
        finally:
            for alias in ("default", "other"):
                connections[alias].close()

    closer = djangos_closer()
    request_finished.disconnect(closer)
    try:
        assert support.in_thread(request), "the thread's own 'default' connection was closed"
    finally:
        request_finished.connect(closer)
    assert default_alias() == "default"


def test_a_replica_connection_made_before_it_went_down_does_not_end_its_downtime(monkeypatch):
    # Two reading requests try the replica at once: the slow one connected just before a
    # shutdown began, the fast one was refused and started the downtime. The slow one's
    # success is older news: the replica stays down, logged once, not "back" (under load the
    # first version flapped: down, back, down, back).
    import logging

    from connlocal_shim import middleware

    config = middleware.PinningConfig({"other": "default"}, 0, "pin", 30)
    fast_done = threading.Event()

    class Refused(Exception):
        pass

    def connect(alias):
        if threading.current_thread().name == "slow":
            assert fast_done.wait(10)
            return None
        return Refused("the database system is shutting down")

    messages = []

    class Kept(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Kept()
    logger = logging.getLogger("connlocal_shim")
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(middleware, "_connect", connect)
    found = {}

    def read(name):
        found[name] = middleware.replicas_down(config)
        if name == "fast":
            fast_done.set()

    try:
        slow = threading.Thread(target=read, args=("slow",), name="slow")
        slow.start()
        time.sleep(0.05)  # the slow request's try begins first
        fast = threading.Thread(target=read, args=("fast",), name="fast")
        fast.start()
        fast.join(10)
        slow.join(10)
        still_down = "other" in middleware._replicas_down
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        middleware._replicas_down.pop("other", None)
        middleware._replicas_changed.pop("other", None)
    assert found == {"fast": ["other"], "slow": ["other"]}
    assert still_down, "an older successful try ended the downtime"
    assert len(messages) == 1 and "unreachable" in messages[0], messages
