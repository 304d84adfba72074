"""install() and uninstall() wait for a greenlet suspended inside a DatabaseWrapper method
(atomic.paused_between_calls): its frames are on no thread's stack, only in the greenlet."""
import os

import pytest

import greenlib
import support

HERE = os.path.dirname(os.path.abspath(__file__))

HELD = r"""
import sys
sys.path[:0] = [%(here)r, %(tests)r]
import greenlib
lib = greenlib.load(%(library)r)
lib.patch()
import support
support.configure()
support.start_django()
import connlocal_shim
from django.db import connections
from django.db.backends.signals import connection_created

if %(change)r == "install":
    connlocal_shim.uninstall()
inside, proceed = lib.Gate(), lib.Gate()
errors, changed = [], []


def hold(sender, connection, **kwargs):
    # Called from _cursor(), between opening the connection and making the cursor.
    if connection.alias == "other":
        inside.open()
        proceed.wait(30)


def query():
    try:
        connections["other"].cursor().execute("SELECT 1")
    except Exception as error:
        errors.append(repr(error))


def change():
    getattr(connlocal_shim, %(change)r)()
    changed.append(True)


connection_created.connect(hold, weak=False)
held = lib.spawn(query)
assert inside.wait(30), "the greenlet never reached _cursor()"
changer = lib.spawn(change)
lib.sleep(0.5)
print("CHANGED_WHILE_INSIDE %%s" %% bool(changed))
proceed.open()
print("JOINED %%s" %% lib.join([held, changer], 30))
print("ERRORS %%r" %% errors)
print("INSTALLED %%s" %% connlocal_shim.is_installed())
"""


@pytest.mark.parametrize("change", ["uninstall", "install"])
@pytest.mark.parametrize("library", greenlib.LIBRARIES)
def test_the_change_waits_for_a_greenlet_suspended_inside_a_wrapper_method(library, change):
    greenlib.require(library, library)
    if not support.original_features().needs_backport:
        pytest.skip("handler already thread-local: install() patches nothing")
    tests = os.path.dirname(HERE)
    out, _, _ = support.run_python(
        HELD % {"library": library, "here": HERE, "tests": tests, "change": change}
    )
    assert "CHANGED_WHILE_INSIDE False" in out, out
    assert "JOINED True" in out, out
    assert "ERRORS []" in out, out
    assert ("INSTALLED %s" % (change == "install")) in out, out
