"""Ways 1.2/1.3-era code uses connections across threads, each a function of an alias (issue
25's equivalence scripts). A line marked ``# 1.4 raises`` is where Django 1.4 refuses the call
with DatabaseError ("DatabaseWrapper objects created in a thread can only be used in that same
thread"); every other line of the case must run. tests/test_sharing_sites.py runs every case and
compares the lines that raised with the marks: on Django 1.4+ natively, on 1.2/1.3 with the
backport installed, which must refuse exactly where 1.4 does.

Each case runs its other thread to the end before it returns; what the other thread raised is
collected by ``other_thread`` and reported, with the line of this file it was raised from.
"""
import os
import sys
import threading

from django.db import connection, connections

SELECT = "SELECT 1"


def other_thread(work, *args):
    """Run ``work(*args)`` in a new thread; return the DatabaseErrors it raised, as
    (exception, the line of this file the call that raised was made from)."""
    from django.db.utils import DatabaseError

    raised = []

    def run():
        try:
            work(*args)
        except DatabaseError as error:
            raised.append((error, line_here(sys.exc_info()[2])))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return raised


def attempts(*works):
    """Run each of ``works`` in its own other thread, one after another; collect what each
    raised (so that a case can show several calls, each refused or not on its own)."""
    found = []
    for work in works:
        found.extend(other_thread(work))
    return found


def line_here(traceback):
    """The line of this file where the innermost call of ``traceback`` made from it is."""
    line = None
    here = os.path.abspath(__file__).rstrip("co")  # .pyc / .pyo: the source beside it
    while traceback is not None:
        if os.path.abspath(traceback.tb_frame.f_code.co_filename) == here:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


class Holder(object):
    """A service object of the site that keeps a wrapper (a repository, a cache)."""

    def __init__(self, db):
        self.db = db


# -- no sharing: nothing raises -------------------------------------------------------------

def each_thread_looks_its_connection_up(alias):
    def work():
        cursor = connections[alias].cursor()
        cursor.execute(SELECT)
        connections[alias].close()

    return other_thread(work)


def the_default_connection_proxy_in_a_thread(alias):
    # django.db.connection follows the current thread on 1.4 (DefaultConnectionProxy), and with
    # the backport (captured references follow the thread): it is never another thread's.
    def work():
        connection.cursor().execute(SELECT)
        connection.close()

    return other_thread(work)


def a_wrapper_shared_on_purpose(alias):
    from connlocal_shim import shared_connection

    with shared_connection(alias) as wrapper:
        def work():
            wrapper.cursor().execute(SELECT)

        return other_thread(work)


# -- sharing: 1.4 refuses -------------------------------------------------------------------

def a_wrapper_passed_to_a_thread(alias):
    wrapper = connections[alias]

    def work(db):
        db.cursor().execute(SELECT)  # 1.4 raises

    return other_thread(work, wrapper)


def a_wrapper_kept_by_a_service_object(alias):
    holder = Holder(connections[alias])

    def work():
        holder.db.cursor().execute(SELECT)  # 1.4 raises

    return other_thread(work)


def another_threads_connection_closed(alias):
    wrapper = connections[alias]
    wrapper.cursor().execute(SELECT)

    def work():
        wrapper.close()  # 1.4 raises

    found = other_thread(work)
    wrapper.close()
    return found


def another_threads_transaction_ended(alias):
    # The wrappers' own commit() and rollback(): Django 1.3's, and 1.4's.
    wrapper = connections[alias]

    def commit():
        wrapper.commit()  # 1.4 raises

    def rollback():
        wrapper.rollback()  # 1.4 raises

    return attempts(commit, rollback)


def a_cursor_handed_to_a_thread(alias):
    # A cursor is not guarded: 1.4 lets the other thread use it (and its DB-API connection).
    cursor = connections[alias].cursor()

    def work():
        cursor.execute(SELECT)

    found = other_thread(work)
    connections[alias].close()
    return found


CASES = (
    each_thread_looks_its_connection_up,
    the_default_connection_proxy_in_a_thread,
    a_wrapper_shared_on_purpose,
    a_wrapper_passed_to_a_thread,
    a_wrapper_kept_by_a_service_object,
    another_threads_connection_closed,
    another_threads_transaction_ended,
    a_cursor_handed_to_a_thread,
)
