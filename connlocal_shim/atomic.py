"""install() and uninstall() change many objects; no other thread may see them half-changed.

Under CPython's GIL another thread runs only when the running one gives the GIL up: at the
interpreter's periodic switch (every ``sys.getcheckinterval()`` bytecodes on Python 2, after
``sys.getswitchinterval()`` seconds on Python 3), or in a call that releases it (I/O, sleeping,
waiting on a lock, an import while another thread holds the import lock). :func:`others_paused`
raises the periodic switch out of reach for a short block that only assigns attributes, and keeps
the cycle collector (whose finalizers may do I/O) from running in it. Greenlets switch only where
code blocks, which such a block never does.

Every other thread then sees the database layer before the block or after it, whole. What this
cannot change is a call that was already running in another thread when the block started: it
resumes afterwards in the middle of its own code. The backport makes those calls land safely
(a thread's old and new wrapper share one state; an old wrapper stored by code in flight gets a
rebuilt stand-in; rebuilt classes are reused across installs; retired ones still accept their
instances): see README, "Limits worth knowing", for what is left.
"""
import contextlib
import gc
import sys

_FOREVER_TICKS = 2 ** 30  # Python 2: bytecodes between switches
_FOREVER_SECONDS = 3600.0  # Python 3: seconds between forced switches


@contextlib.contextmanager
def others_paused():
    """Run the block without handing the GIL to another thread (see the module's docstring).
    The block must not do I/O, sleep, wait, import or log."""
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
    try:
        yield
    finally:
        restore(previous)
        if collecting:
            gc.enable()
