"""install() and uninstall() change many objects; no other thread may see them half-changed.

Under CPython's GIL another thread runs only when the running one gives the GIL up: at the
interpreter's periodic switch (every ``sys.getcheckinterval()`` bytecodes on Python 2, after
``sys.getswitchinterval()`` seconds on Python 3), or in a call that releases it (I/O, sleeping,
waiting on a lock, an import while another thread holds the import lock). :func:`others_paused`
raises the periodic switch out of reach for a short block that only assigns attributes, and keeps
the cycle collector (whose finalizers may do I/O) from running in it. Greenlets switch only where
code blocks, which such a block never does. A block therefore takes no lock (Python 2 gives
the GIL up on every acquire, free or not), imports nothing (Python 2 takes the import lock),
logs, warns or sleeps nothing: tests/pause_audit.py records any such call. On Python 3 a thread
whose wait for the GIL began before the pause may still be handed it once, after the switch
interval of before: the only block there is one attribute assignment (per-task routing),
atomic by itself; the backport's blocks run on Python 2, where the pause is exact.

Every other thread then sees the database layer before the block or after it, whole. That
alone does not cover a call that was already running in another thread when the block started:
it would resume afterwards in the middle of its own code, under the other layer (a
``super(DatabaseWrapper, self)`` that reads the module global after the change, a connection
set on the old wrapper's state and read through the new one). :func:`paused_between_calls`
therefore pauses the others at a moment when none of them is inside the code it is given (the
methods of the database layer), looking at every thread's stack, and every suspended greenlet's
where greenlets are in use; it lets them run on meanwhile, for at most a given time.
"""
import contextlib
import gc
import sys
import threading
import time

_FOREVER_TICKS = 2 ** 30  # Python 2: bytecodes between switches
_FOREVER_SECONDS = 3600.0  # Python 3: seconds between forced switches


_FIRST_WAIT = 0.0005  # seconds the others run on before the stacks are looked at again
_LONGEST_WAIT = 0.05


def _pause():
    """Stop handing the GIL over; returns the function that resumes."""
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    if sys.version_info[0] == 2:
        previous = sys.getcheckinterval()
        sys.setcheckinterval(_FOREVER_TICKS)
        restore = sys.setcheckinterval
    else:
        previous = sys.getswitchinterval()
        sys.setswitchinterval(_FOREVER_SECONDS)
        restore = sys.setswitchinterval

    def resume():
        restore(previous)
        if collecting:
            gc.enable()

    return resume


@contextlib.contextmanager
def others_paused():
    """Run the block without handing the GIL to another thread (see the module's docstring).
    The block must not take a lock, do I/O, sleep, wait, import, log or warn."""
    resume = _pause()
    try:
        yield
    finally:
        resume()


@contextlib.contextmanager
def paused_between_calls(codes, timeout):
    """:func:`others_paused`, entered once no other thread (or suspended greenlet) is running
    any of ``codes`` (code objects) anywhere in its stack. The others run on meanwhile; after
    ``timeout`` seconds the block runs anyway. Yields what was still in such a call then, as
    ``(thread or greenlet name, "file:line in function")`` pairs: empty when none was.
    """
    deadline = time.time() + timeout
    wait = _FIRST_WAIT
    while True:
        resume = _pause()
        try:
            caught = calls_under_way(codes)
        except BaseException:
            resume()  # never leave the others paused
            raise
        if not caught or time.time() >= deadline:
            break
        resume()
        time.sleep(wait)  # read at each call: gevent's, once it patched time, lets greenlets run
        wait = min(wait * 2, _LONGEST_WAIT)
    try:
        yield caught
    finally:
        resume()


def calls_under_way(codes):
    """``(name, where)`` of each other thread, and each suspended greenlet, running one of
    ``codes``: the innermost such frame of its stack."""
    here = sys._getframe()
    stacks = [
        (ident, frame) for ident, frame in sys._current_frames().items() if frame is not here
    ]
    names = dict((ident, thread.name) for ident, thread in list(threading._active.items()))
    found = []
    for ident, frame in stacks:
        where = _innermost(frame, codes)
        if where is not None:
            found.append((names.get(ident, "thread %s" % ident), where))
    kind = getattr(sys.modules.get("greenlet"), "greenlet", None)
    if kind is not None:
        for candidate in gc.get_objects():
            if isinstance(candidate, kind):
                where = _innermost(getattr(candidate, "gr_frame", None), codes)
                if where is not None:
                    found.append((repr(candidate), where))
    return found


def _innermost(frame, codes):
    while frame is not None:
        if frame.f_code in codes:
            code = frame.f_code
            return "%s:%d in %s" % (code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return None
