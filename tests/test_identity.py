"""What "the current thread" means, looked up when needed, and per-thread values freed as the
thread ends (identity.py)."""
import threading

from connlocal_shim.identity import PerThread, get_ident
from support import in_thread


def test_each_thread_gets_its_own_value_made_on_first_use():
    made = []
    values = PerThread(lambda: made.append(1) or [])
    mine = values.current()
    mine.append("here")
    theirs = in_thread(values.current)
    assert theirs == [] and theirs is not mine
    assert values.current() is mine and len(made) == 2
    assert values.peek() is mine and in_thread(values.peek) is None


def test_a_threads_value_is_dropped_and_reported_when_the_thread_ends():
    ended = []
    gone = threading.Event()

    def on_end(ident, value):
        ended.append((ident, value))
        gone.set()

    values = PerThread(dict, on_end)

    def use():
        values.current()["x"] = 1
        return get_ident()

    ident = in_thread(use)
    assert gone.wait(10), "the thread's end was not seen"
    assert ended == [(ident, {"x": 1})]
    assert ident not in values.by_ident


def test_a_retired_per_thread_reports_no_end():
    ended = []
    values = PerThread(dict, lambda ident, value: ended.append(ident))
    values.retired = True
    ident = in_thread(lambda: values.current() and get_ident() or get_ident())
    # The value is dropped all the same; nothing is reported.
    for _ in range(1000):
        if ident not in values.by_ident:
            break
        threading.Event().wait(0.01)
    assert ident not in values.by_ident and ended == []


def test_the_identity_is_read_at_each_call():
    # gevent and eventlet replace thread.get_ident when they patch; a value bound at import
    # would miss a patch applied later.
    from connlocal_shim import identity

    module = identity.thread_module()
    original = module.get_ident
    module.get_ident = lambda: "a greenlet"
    try:
        assert get_ident() == "a greenlet"
    finally:
        module.get_ident = original
    assert get_ident() == original()


class _MeetingDict(dict):
    """PerThread's table of locals, whose get() lets the two first callers both read it before
    either goes on: the moment two threads of a fresh process meet in their first use."""

    def __init__(self):
        dict.__init__(self)
        self.waiting = 0
        self.met = threading.Condition()

    def get(self, key, default=None):
        found = dict.get(self, key, default)
        with self.met:
            self.waiting += 1
            self.met.notify_all()
            while 0 < self.waiting < 2:
                if not self.met.wait(10):
                    break
        return found


def test_threads_using_a_per_thread_at_once_for_the_first_time_keep_their_values():
    # Both threads read "no local yet" before either stored one. When the second stored its
    # own, the first's local (and the watcher of its thread in it) went, ending the first
    # thread's value while it ran: a route_connections block then "exited more often than
    # entered" and a live thread's connections were dropped, in the first requests of a
    # fresh mod_wsgi daemon. 7 of 4,500 threads lost their value on Python 2.7 (15 at once,
    # switch interval 1), 29 on Python 3.11, before the fix.
    ended = []
    values = PerThread(list, lambda ident, value: ended.append(ident))
    values._locals = _MeetingDict()
    both_made = threading.Event()
    made, kept = [], []

    def first_use():
        value = values.current()  # returns once this thread's watcher is in place
        made.append(True)
        both_made.wait(10)
        kept.append(values.current() is value)

    threads = [threading.Thread(target=first_use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(1000):
        if len(made) == 2:
            break
        threading.Event().wait(0.01)
    both_made.set()
    for thread in threads:
        thread.join(10)
    assert kept == [True, True], "a thread's value ended while it ran (ended: %d)" % len(ended)
    assert len(values._locals) == 1
