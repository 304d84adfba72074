"""A greenlet's identity is its id, which the next greenlet gets as soon as the last one is
freed: what connlocal_shim keeps per identity must start afresh for it (identity.py watches the
greenlet itself; eventlet's local keeps the state of the greenlet that used it last)."""
import os

import pytest

import greenlib
import support

REUSE = r"""
import sys
sys.path.insert(0, %(here)r)
import greenlib
lib = greenlib.load(%(library)r)
lib.patch()
from connlocal_shim.identity import PerThread
values = PerThread(dict)
stale = []
idents = set()
from connlocal_shim.identity import get_ident
def work(index):
    idents.add(get_ident())
    mine = values.current()
    if mine:
        stale.append((index, dict(mine)))
    mine["owner"] = index
    lib.sleep(0)
tasks = []
for index in range(300):  # as a worker's pool: a few at a time, each freed as it ends
    tasks.append(lib.spawn(work, index))
    if len(tasks) == 5:
        lib.sleep(0)
        lib.sleep(0)
        tasks = [task for task in tasks if not task.dead]
while tasks:
    lib.sleep(0)
    tasks = [task for task in tasks if not task.dead]
del task
print("STALE %%d %%r" %% (len(stale), stale[:3]))
print("LEFT %%d" %% len(values.by_ident))
print("IDENTITIES %%d" %% len(idents))
"""


@pytest.mark.parametrize("library", greenlib.LIBRARIES)
def test_a_greenlet_that_gets_a_freed_greenlets_id_starts_afresh(library):
    greenlib.require(library, library)
    here = os.path.dirname(os.path.abspath(__file__))
    out, _, _ = support.run_python(REUSE % {"library": library, "here": here})
    assert "STALE 0 []" in out, out
    assert "LEFT 0" in out, out
    identities = int(out.split("IDENTITIES ")[1].split()[0])
    assert identities < 100, "300 greenlets, few at a time: their ids must have been reused"


FIRST_IMPORTED_AFTER_INSTALL = r"""
import sys
sys.path.insert(0, %(here)r)
import support
support.configure()
support.start_django()
import connlocal_shim
from django.db import connections
# The main thread has its wrapper before any green library is even imported: the handler's
# hot path has get_ident bound (identity.bind_get_ident) until one arrives.
main = connections["default"]
main.cursor().execute("SELECT 1")
print("LOADED BEFORE %%s" %% any(name in sys.modules for name in ("gevent", "eventlet")))
import greenlib
lib = greenlib.load(%(library)r)
lib.patch()
seen = {}
def work(index):
    wrapper = connections["default"]
    lib.sleep(0)
    seen[index] = (id(wrapper), connections["default"] is wrapper)
tasks = [lib.spawn(work, index) for index in range(5)]
print("JOINED %%s" %% lib.join(tasks, 20))
print("OWN %%d of 5, none the main thread's: %%s" %% (
    len(set(own for own, _ in seen.values())), id(main) not in [own for own, _ in seen.values()]))
print("STEADY %%s" %% all(steady for _, steady in seen.values()))
"""


@pytest.mark.parametrize("library", greenlib.LIBRARIES)
def test_a_green_library_first_imported_after_install_gives_each_greenlet_its_own(library):
    greenlib.require(library, library)
    if support.original_features().thread_local_handler != "missing":
        pytest.skip("handler already thread-local: Django's own threading.local, which a "
                    "monkey patch after import does not reach (Django 1.4's behaviour)")
    here = os.path.dirname(os.path.abspath(__file__))
    out, err, _ = support.run_python(FIRST_IMPORTED_AFTER_INSTALL % {
        "library": library, "here": here})
    assert out.splitlines() == [
        "LOADED BEFORE False",
        "JOINED True",
        "OWN 5 of 5, none the main thread's: True",
        "STEADY True",
    ], err
