"""gevent and eventlet behind one small interface, for the greenlet scenarios (scenario.py):

    lib = greenlib.load("gevent")     # or "eventlet"; imports it, patches nothing
    lib.patch()                       # gevent.monkey.patch_all() / eventlet.monkey_patch()
    task = lib.spawn(func, arg)       # a greenlet running func(arg)
    lib.sleep(0)                      # let the other greenlets run
    gate = lib.Gate(); gate.open(); gate.wait(timeout)
    lib.join([task, ...], timeout)    # False if some are still running after timeout seconds

The monkey patch is the one gunicorn's -k gevent and -k eventlet workers apply (gunicorn 19.10:
``monkey.patch_all(subprocess=True)``, ``eventlet.monkey_patch(os=False)``).
"""
LIBRARIES = ("gevent", "eventlet")


class Gevent(object):
    name = "gevent"

    def __init__(self):
        import gevent
        import gevent.event

        self.gevent = gevent
        self.version = gevent.__version__
        self._event_class = gevent.event.Event

    def patch(self):
        from gevent import monkey

        monkey.patch_all(subprocess=True)

    def spawn(self, func, *args):
        return self.gevent.spawn(func, *args)

    def sleep(self, seconds=0):
        self.gevent.sleep(seconds)

    def join(self, tasks, timeout):
        finished = self.gevent.joinall(tasks, timeout=timeout)
        return len(finished) == len(tasks)

    def Gate(self):
        event = self._event_class()
        return Gate(event.set, lambda timeout: event.wait(timeout))


class Eventlet(object):
    name = "eventlet"

    def __init__(self):
        import eventlet
        import eventlet.event

        self.eventlet = eventlet
        self.version = eventlet.__version__
        self._event_class = eventlet.event.Event

    def patch(self):
        self.eventlet.monkey_patch(os=False)

    def spawn(self, func, *args):
        return self.eventlet.spawn(func, *args)

    def sleep(self, seconds=0):
        self.eventlet.sleep(seconds)

    def join(self, tasks, timeout):
        # The tasks of the scenarios catch everything they raise: wait() returns their value.
        with self.eventlet.Timeout(timeout, False):
            for task in tasks:
                task.wait()
            return True
        return False

    def Gate(self):
        event = self._event_class()

        def wait(timeout):
            with self.eventlet.Timeout(timeout, False):
                event.wait()
            return event.ready()

        return Gate(lambda: event.ready() or event.send(True), wait)


class Gate(object):
    """A one-way gate: wait(timeout) returns True once open() was called (False on timeout)."""

    def __init__(self, open_, wait):
        self.open = open_
        self.wait = wait


def load(name):
    if name == "gevent":
        return Gevent()
    if name == "eventlet":
        return Eventlet()
    raise ValueError("greenlib: no greenlet library %r (known: %s)" % (name, ", ".join(LIBRARIES)))


def require(module, package):
    """In a test: skip, saying what to install, when ``module`` cannot be imported; fail instead
    where CI requires the greenlet libraries (CONNLOCAL_SHIM_REQUIRE_GREENLETS=1)."""
    try:
        __import__(module)
    except ImportError as error:
        missing("no %s (%s): pip install %s" % (module, error, package))


def missing(reason):
    """Skip the test for ``reason``, or fail it where CI requires what is missing."""
    import os

    import pytest

    if os.environ.get("CONNLOCAL_SHIM_REQUIRE_GREENLETS") == "1":
        pytest.fail("CONNLOCAL_SHIM_REQUIRE_GREENLETS=1 and " + reason, pytrace=False)
    pytest.skip(reason)
