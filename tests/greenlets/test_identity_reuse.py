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
