"""What the thread that paused the others (atomic.py) calls while they are paused.

In such a block no other thread may run: one that did would find the database layer half
changed (a handler class already retired but still in place, say). A thread gives the GIL up in
any call that may block: taking a lock (Python 2 releases the GIL on every acquire, contended or
not), importing (Python 2 takes the import lock), logging, sleeping or warning (I/O). Which of
them happens to hand the GIL over is down to the scheduler, so a race test catches it only now
and then; :class:`PausedCallAudit` records each such call instead, every time.
"""
import logging
import os
import sys
import threading
import time
import traceback
import warnings

try:
    import builtins
    from _thread import get_ident
except ImportError:  # Python 2
    import __builtin__ as builtins
    from thread import get_ident

from connlocal_shim import atomic

PACKAGE_DIR = os.path.dirname(os.path.abspath(atomic.__file__))
LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def others_paused_now():
    if sys.version_info[0] == 2:
        return sys.getcheckinterval() >= atomic._FOREVER_TICKS
    return sys.getswitchinterval() >= atomic._FOREVER_SECONDS


def where_in_the_shim():
    """``module.py:function`` of the innermost frame of connlocal_shim's own code."""
    for filename, _, function, _ in reversed(traceback.extract_stack()):
        if os.path.dirname(os.path.abspath(filename)) == PACKAGE_DIR:
            return "%s:%s" % (os.path.basename(filename).replace(".pyc", ".py"), function)
    return "outside connlocal_shim"


class RecordingLock(object):
    """Stands for a module's lock; notes an acquire made while the others are paused (an
    RLock the thread already holds excepted: taking it again does not wait)."""

    def __init__(self, audit, name, lock):
        self._audit, self._name, self._lock = audit, name, lock

    def _note(self):
        is_owned = getattr(self._lock, "_is_owned", None)
        if is_owned is not None and is_owned():
            return
        self._audit.note("takes lock %s" % self._name)

    def acquire(self, *args, **kwargs):
        self._note()
        return self._lock.acquire(*args, **kwargs)

    def release(self):
        return self._lock.release()

    def __enter__(self):
        self._note()
        return self._lock.__enter__()

    def __exit__(self, *exc_info):
        return self._lock.__exit__(*exc_info)

    def __getattr__(self, name):
        return getattr(self._lock, name)


class RecordingHandler(logging.Handler):
    def __init__(self, audit):
        logging.Handler.__init__(self, logging.DEBUG)
        self._audit = audit

    def emit(self, record):
        self._audit.note("logs %r" % record.getMessage()[:60], in_thread=record.thread)


class PausedCallAudit(object):
    """While entered, records (``found``) each call that may give the GIL up made by this
    thread while the others are paused, as ``"what (module.py:function)"``; ``pauses`` counts
    the pauses seen. The locks are those held in the globals of connlocal_shim's modules and of
    ``threading`` and ``logging``; the connlocal_shim logger logs at DEBUG meanwhile."""

    def __init__(self):
        self.found, self.pauses = [], 0
        self.thread = get_ident()
        self._undo = []

    def note(self, what, in_thread=None):
        in_thread = get_ident() if in_thread is None else in_thread  # takes no lock
        if in_thread == self.thread and others_paused_now():
            self.found.append("%s (%s)" % (what, where_in_the_shim()))

    def _replace(self, owner, name, value):
        original = vars(owner)[name] if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, original))

    def __enter__(self):
        audit = self
        for module_name, module in sorted(sys.modules.items()):
            if module is None or not (module_name.startswith("connlocal_shim")
                                      or module_name in ("threading", "logging")):
                continue
            for name, value in sorted(vars(module).items()):
                if isinstance(value, LOCK_TYPES):
                    label = "%s.%s" % (module_name, name)
                    self._replace(module, name, RecordingLock(self, label, value))
        original_import = builtins.__import__

        def recording_import(name, *args, **kwargs):
            audit.note("imports %s" % name)
            return original_import(name, *args, **kwargs)

        self._replace(builtins, "__import__", recording_import)
        for owner, name, what in ((time, "sleep", "sleeps"), (warnings, "warn", "warns")):
            self._wrap(owner, name, what)
        original_pause = atomic._pause

        def counting_pause():
            audit.pauses += 1
            return original_pause()

        self._replace(atomic, "_pause", counting_pause)
        logger = logging.getLogger("connlocal_shim")
        handler, level = RecordingHandler(self), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        self._undo.append(lambda: (logger.removeHandler(handler), logger.setLevel(level)))
        return self

    def _wrap(self, owner, name, what):
        original = getattr(owner, name)
        audit = self

        def recording(*args, **kwargs):
            audit.note(what)
            return original(*args, **kwargs)

        self._replace(owner, name, recording)

    def __exit__(self, *exc_info):
        while self._undo:
            self._undo.pop()()
