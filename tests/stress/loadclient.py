"""A pool of client threads sending a fixed plan of HTTP requests to 127.0.0.1, bounded in count
and in time: it stops by itself when the plan is done or its deadline has passed.

    plan = make_plan(4000)                       # [(index, kind, rid, rows)], a fixed mix
    with LoadRun(url, plan, clients=24) as load:
        load.wait_for_completed(1000, timeout=300)
        ...                                      # the test's faults, while the load goes on
    load.results                                 # one Result per request sent
"""
import json
import random
import threading
import time

try:  # Python 3
    from http.client import HTTPConnection, HTTPException
    from urllib.parse import urlsplit
except ImportError:  # Python 2
    from httplib import HTTPConnection, HTTPException
    from urlparse import urlsplit

import socket

# What the stress project serves (stressproject/views.py), and how often.
KINDS = (
    ("read", "GET", "/read/", 40),
    ("write", "POST", "/write/", 30),
    ("fail", "POST", "/fail/", 15),
    ("log", "GET", "/log/", 15),
)
METHODS = dict((kind, (method, path)) for kind, method, path, _ in KINDS)


class Result(object):
    __slots__ = ("index", "kind", "rid", "rows", "status", "body", "error", "started", "ended")

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))

    @property
    def ok(self):
        return self.status == 200

    @property
    def worker(self):
        return (self.body or {}).get("worker")

    @property
    def error_kind(self):
        """What went wrong, as the view's exception class or the client's: None if nothing."""
        if self.ok:
            return None
        if self.body and self.body.get("error"):
            if self.body.get("escaped"):
                return "%s (raised out of Django's handler)" % self.body["error"]
            return self.body["error"]
        if self.error:
            return self.error
        return "HTTP %s" % self.status

    @property
    def server_started(self):
        """When the server began the request (the client's time if it never answered)."""
        return (self.body or {}).get("started") or self.started

    def describe(self):
        return "%s %s (%s): status %s, %s %s, worker %s" % (
            self.kind, self.rid, self.index, self.status, self.error_kind,
            (self.body or {}).get("message", ""), self.worker,
        )


def make_plan(count, seed=5):
    """``count`` requests of the kinds of KINDS, in a fixed random order; writes have 1 to 4
    rows."""
    chooser = random.Random(seed)
    weighted = []
    for kind, _, _, weight in KINDS:
        weighted.extend([kind] * weight)
    plan = []
    for index in range(count):
        kind = chooser.choice(weighted)
        plan.append((index, kind, "%s-%05d" % (kind, index), 1 + index % 4))
    return plan


def request(base_url, method, path, timeout=30):
    """One HTTP request on a connection of its own: a Result with status, the JSON body (or
    None) and, if it never got an answer, the client's error kind."""
    parts = urlsplit(base_url)
    started = time.time()
    status = body = error = None
    connection = HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, path, body=b"" if method == "POST" else None)
        response = connection.getresponse()
        status = response.status
        raw = response.read()
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            body = None
    except (socket.error, HTTPException) as exc:  # socket.error is OSError on Python 3
        error = "client %s" % type(exc).__name__
    finally:
        connection.close()
    return Result(status=status, body=body, error=error, started=started, ended=time.time())


class LoadRun(object):
    def __init__(self, base_url, plan, clients=24, deadline=600, timeout=60, backoff=0.2):
        self.base_url = base_url
        self.backoff = backoff
        self.plan = list(plan)
        self.clients = clients
        self.deadline_seconds = deadline
        self.timeout = timeout
        self.results = []
        self.started = self.ended = None
        self.stopped_by_deadline = False
        self._next = 0
        self._completed = 0
        self._clients_left = clients
        self._lock = threading.Condition()
        self._threads = [
            threading.Thread(target=self._client, name="load-client-%d" % number)
            for number in range(clients)
        ]
        for thread in self._threads:
            thread.daemon = True

    def _take(self):
        with self._lock:
            if self._next >= len(self.plan):
                return None
            if time.time() >= self.deadline:
                self.stopped_by_deadline = True
                return None
            item = self.plan[self._next]
            self._next += 1
            return item

    def _client(self):
        try:
            self._send()
        finally:
            with self._lock:
                self._clients_left -= 1
                self._lock.notify_all()

    def _send(self):
        pause = threading.Event()
        while True:
            item = self._take()
            if item is None:
                return
            index, kind, rid, rows = item
            method, path = METHODS[kind]
            result = request(
                self.base_url, method, "%s?rid=%s&rows=%d" % (path, rid, rows), self.timeout
            )
            result.index, result.kind, result.rid, result.rows = index, kind, rid, rows
            with self._lock:
                self.results.append(result)
                self._completed += 1
                self._lock.notify_all()
            if result.error_kind and result.error_kind != "IntendedFailure":
                # As a real client backs off: while the database restarts, failing requests
                # would otherwise use up the plan in a moment.
                pause.wait(self.backoff)

    @property
    def running(self):
        """Whether any client is still sending."""
        with self._lock:
            return self._clients_left > 0 and self._next < len(self.plan)

    @property
    def completed(self):
        with self._lock:
            return self._completed

    def wait_for_completed(self, count):
        """Wait until ``count`` requests have been answered (or failed); False if the clients
        stopped before (their deadline passed)."""
        with self._lock:
            while self._completed < count and self._clients_left:
                self._lock.wait(1.0)
            return self._completed >= count

    def start(self):
        self.started = time.time()
        self.deadline = self.started + self.deadline_seconds
        for thread in self._threads:
            thread.start()
        return self

    def join(self):
        """Wait for every client (each ends within its deadline plus one request's timeout)."""
        for thread in self._threads:
            thread.join(self.deadline - time.time() + self.timeout + 30)
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        assert not alive, "load clients still running: %s" % ", ".join(alive)
        self.ended = time.time()

    def __enter__(self):
        return self.start()

    def stop(self):
        """Send no more requests (those in flight finish)."""
        with self._lock:
            self._next = len(self.plan)

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is not None:
            self.stop()
        self.join()
        return False
