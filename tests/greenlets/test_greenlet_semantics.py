"""What "a thread" means under gevent and eventlet: a greenlet, whether the monkey patch ran
before connlocal_shim installed (gunicorn -k gevent / -k eventlet) or after it, in the same
process (gunicorn --preload: the master installs, the worker patches).

Each case runs scenario.py in a fresh interpreter, patched in its order, on an sqlite file or on
this process's throwaway PostgreSQL cluster, and judges what it printed: every greenlet its own
wrapper, DB-API connection and server session; transactions that do not interleave (PostgreSQL:
sqlite's file lock blocks the whole process while another greenlet holds it, so greenlets there
cannot yield inside a write); a wrapper used by another greenlet than its own refused with
DatabaseError unless shared; nothing left open once the greenlets have ended, without close().
"""
import json
import os
import sys

import pytest

import greenlib
import support
from support import requires_postgres

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, "scenario.py")
# A scenario takes a few seconds. Greenlets that wait for one DB-API connection can block the
# whole OS thread (psycopg2's connection lock under eventlet): then only this timeout ends it.
TIMEOUT = 45
SHARING_REFUSED = "can only be used in that same thread"
PARTS = ("own", "transactions", "sharing", "left_open")


def run_scenario(library, order, database):
    """scenario.py's report as one dict; a check during which the process hung (or died) gets
    {"error": ...} saying so, and those after it "not run"."""
    env = {}
    if database == "postgres":
        env["CONNLOCAL_GREEN_PG_PORT"] = str(support.postgres_cluster.port)
    finished = support.run_process(
        [sys.executable, SCENARIO, library, order, database], TIMEOUT, env=env)
    result, running, done = None, None, False
    for line in finished.out.splitlines():
        kind, _, rest = line.partition(" ")
        name, _, value = rest.partition(" ")
        if kind == "PART" and name == "start":
            result = json.loads(value)
        elif kind == "PART" and result is not None:
            result[name] = json.loads(value)
        elif kind == "RUNNING":
            running = name
        elif kind == "DONE":
            done = True
    assert result is not None, "scenario.py reported nothing\n" + finished.describe()
    if not done:
        how = ("hung: killed after %ss" % TIMEOUT) if finished.timed_out \
            else "died with exit status %s" % finished.returncode
        for name in PARTS:
            if name in result:
                continue
            if name == "transactions" and database != "postgres":
                continue
            if name == running:
                result[name] = {"error": "the process %s during this check" % how}
            else:
                result[name] = {"error": "not run: the process %s earlier" % how}
        if not isinstance(result["left_open"], int):
            result["left_open"] = result["left_open"].get("error")
    return result, finished


def judge_start(result, problem):
    if result["start_error"]:
        problem("Django's start (install() from INSTALLED_APPS) raised %s" % result["start_error"])
    if not result["status"]["installed"]:
        problem("connlocal_shim.status() says not installed: %s" % result["status"])
    for alias, error in sorted(result["main"].items()):
        if error:
            problem("the installing greenlet's query on %r failed: %s" % (alias, error))


def judge_own(own, problem):
    greenlets = own.get("greenlets") or []
    if own.get("error") or not own.get("finished"):
        problem("own: %s" % (own.get("error") or "the greenlets never finished"))
    errors = [g.get("error") for g in greenlets if g and g.get("error")]
    if errors:
        problem("own: greenlets failed: %s" % sorted(set(errors)))
    complete = [g for g in greenlets if g and "first" in g and "wrapper" in g]
    wrappers = set(g["wrapper"] for g in complete)
    sessions = set(g["first"] for g in complete)
    count = own.get("count", 0)
    if len(wrappers) != count:
        problem("own: %d greenlets alive at once used %d wrapper object(s) %s" % (
            count, len(wrappers), sorted(wrappers)))
    if len(sessions) != count:
        problem("own: %d greenlets alive at once used %d connection(s) %s" % (
            count, len(sessions), sorted(sessions)))
    for number, g in enumerate(complete):
        if g.get("second") != g["first"] or not g.get("same_wrapper"):
            problem("own: greenlet %d changed connection or wrapper between its queries "
                    "(%s, then %s)" % (number, g["first"], g.get("second")))
    if own.get("open_during") != count:
        problem("own: %s connections open (server sessions or files) while %d greenlets each "
                "held one" % (own.get("open_during"), count))


def judge_transactions(transactions, problem):
    if transactions.get("error") or not transactions.get("finished"):
        problem("transactions: %s" % (transactions.get("error") or (
            "the greenlets never finished (one waited for a query on a connection another "
            "greenlet was using)")))
    greenlets = transactions.get("greenlets") or []
    errors = [g.get("error") for g in greenlets if g and g.get("error")]
    if errors:
        problem("transactions: greenlets failed: %s" % sorted(set(errors)))
    rows = {}
    for number, seq, txid, pid in transactions.get("rows") or []:
        rows.setdefault(number, []).append((seq, txid, pid))
    txids = {}
    for number, g in enumerate(greenlets):
        if not g:
            continue
        mine = rows.get(number, [])
        if g["commit"] and sorted(seq for seq, _, _ in mine) != [0, 1]:
            problem("transactions: greenlet %d committed, yet its rows are %s" % (number, mine))
        if not g["commit"] and mine:
            problem("transactions: greenlet %d rolled back, yet its rows %s were committed "
                    "(by another greenlet's commit of a shared transaction)" % (number, mine))
        for _, txid, pid in mine:
            txids.setdefault(txid, set()).add(number)
    for txid, numbers in sorted(txids.items()):
        if len(numbers) > 1:
            problem("transactions: transaction %s wrote rows of greenlets %s" % (
                txid, sorted(numbers)))


def judge_sharing(sharing, problem):
    if sharing.get("owner_error") or sharing.get("error") or not sharing.get("finished"):
        problem("sharing: %s" % (sharing.get("owner_error") or sharing.get("error")
                                 or "the greenlets never finished"))
    for key in ("unshared", "unshared_again"):
        refused = sharing.get(key + "_error") or ""
        if "DatabaseError" not in refused or SHARING_REFUSED not in refused:
            problem("sharing: another greenlet used a wrapper it did not create%s and got %s, "
                    "not DatabaseError %r" % (
                        " (after sharing ended)" if key == "unshared_again" else "",
                        sharing.get(key + "_unexpected") or sharing.get(key) and
                        "through to %s" % sharing.get(key) or refused or "nothing",
                        SHARING_REFUSED))
    owner = sharing.get("owner")
    for key, how in (("routed", "shared_connection() + route_connections()"),
                     ("allowed", "allow_thread_sharing = True")):
        if not owner or sharing.get(key) != owner:
            problem("sharing: through %s another greenlet reached %s, not the owner's %s" % (
                how, sharing.get(key) or sharing.get(key + "_error")
                or sharing.get(key + "_unexpected"), owner))


def judge(result):
    problems = []
    judge_start(result, problems.append)
    for name, judge_part in (("own", judge_own), ("transactions", judge_transactions),
                             ("sharing", judge_sharing)):
        part = result.get(name)
        if part is None:
            continue  # transactions: PostgreSQL only
        if set(part) == set(["error"]):  # the check could not run, or the process hung in it
            problems.append("%s: %s" % (name, part["error"]))
        else:
            judge_part(part, problems.append)
    left = result["left_open"]
    if not isinstance(left, int):
        problems.append("left: %s" % left)
    elif left:
        problems.append("left: %d connections (server sessions or open files) once every "
                        "greenlet had ended" % left)
    return problems


@pytest.mark.parametrize("database", [
    "sqlite", pytest.param("postgres", marks=requires_postgres)])
@pytest.mark.parametrize("order", ["before", "between", "after"],
                         ids=["patched-first", "patched-after-import", "patched-after"])
@pytest.mark.parametrize("library", greenlib.LIBRARIES)
def test_greenlets_are_threads(library, order, database):
    greenlib.require(library, library)
    result, finished = run_scenario(library, order, database)
    problems = judge(result)
    assert not problems, "%s, patched %s install, on %s: %d problems:\n%s\n\nscenario: %s" % (
        result["library"], order, database, len(problems), "\n".join(problems),
        json.dumps(result, sort_keys=True)[:4000])
