"""Web helpers of the tests: settings changed for a block, a real threaded WSGI server on
loopback, and plain HTTP requests to it."""
import threading


class settings_changed(object):
    """Set Django settings for a block and put the previous values back (any Django)."""

    _absent = object()

    def __init__(self, **values):
        self.values = values

    def __enter__(self):
        from django.conf import settings

        self.saved = dict(
            (name, getattr(settings, name, self._absent)) for name in self.values
        )
        for name, value in self.values.items():
            setattr(settings, name, value)
        return self

    def __exit__(self, *exc_info):
        from django.conf import settings

        for name, value in self.saved.items():
            if value is self._absent:
                delattr(settings, name)
            else:
                setattr(settings, name, value)
        return False


class ThreadedServer(object):
    """A real threaded WSGI server (wsgiref) on a free loopback port, in a background thread."""

    def __init__(self, app, threaded=True):
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        try:
            from socketserver import ThreadingMixIn
        except ImportError:  # Python 2
            from SocketServer import ThreadingMixIn

        class QuietHandler(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        class ThreadedWSGIServer(ThreadingMixIn, WSGIServer):  # classic classes on Python 2
            daemon_threads = True

        server_class = ThreadedWSGIServer if threaded else WSGIServer
        self.server = make_server("127.0.0.1", 0, app, server_class, QuietHandler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.daemon = True

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(30)
        return False


def http(url, method="GET", cookie=None, form=None):
    """(status, body text, Set-Cookie header) of one real HTTP request; ``form``: a dict
    sent as the POST body, urlencoded."""
    try:
        from urllib.request import Request, urlopen
        from urllib.error import HTTPError
        from urllib.parse import urlencode
    except ImportError:  # Python 2
        from urllib import urlencode
        from urllib2 import HTTPError, Request, urlopen
    data = None
    if method == "POST":
        data = urlencode(form or {}).encode("ascii")
    request = Request(url, data=data)
    request.get_method = lambda: method
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        response = urlopen(request, timeout=30)
    except HTTPError as error:
        return error.code, error.read().decode("utf-8"), None
    headers = response.info()
    set_cookie = headers.get("Set-Cookie") if hasattr(headers, "get") else headers.getheader("Set-Cookie")
    return response.getcode(), response.read().decode("utf-8"), set_cookie
