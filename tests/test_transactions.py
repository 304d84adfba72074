"""Routing an alias to a wrapper uses that wrapper's own transaction state (transactions.py on
Django 1.2, where Django keeps transaction state per thread and alias; each wrapper's own since
Django 1.3). A row written through a routed alias is committed or rolled back with the
transaction of the connection it went to, never with the alias's name."""
import threading

import pytest

import support
from connlocal_shim import routing
from test_routing import OuterTransaction


def connections():
    from django.db import connections

    return connections


def commit_as_save_does(alias):
    """What Model.save() does after its query: commit_unless_managed() before Django 1.6
    (a no-op inside a managed transaction), nothing since (autocommit or atomic)."""
    from django.db import transaction

    if hasattr(transaction, "commit_unless_managed") and not hasattr(transaction, "atomic"):
        transaction.commit_unless_managed(using=alias)


def rows(alias, table):
    with routing.separate_connection(alias) as fresh:
        return support.query(fresh, "SELECT what FROM %s ORDER BY what" % table)


def fresh_table(alias, table):
    support.execute("CREATE TABLE IF NOT EXISTS %s (what VARCHAR(20))" % table, alias=alias)
    support.execute("DELETE FROM %s" % table, alias=alias)
    support.commit(alias)


class Abort(Exception):
    pass


@support.parametrize_over_databases()
def test_a_routed_write_rolls_back_with_the_transaction_of_the_connection_it_went_to(aliases):
    # Django 1.2.7 committed both rows here: save() through "default" asked whether
    # "default" was in a managed transaction, and it was not: "other" was.
    master, replica = aliases["master"], aliases["replica"]
    fresh_table(replica, "tx_routed")
    with pytest.raises(Abort):
        with OuterTransaction(replica):
            support.execute("INSERT INTO tx_routed VALUES ('outer')", alias=replica)
            commit_as_save_does(replica)
            with routing.route_connections(**{master: replica}):
                support.execute("INSERT INTO tx_routed VALUES ('routed')", alias=master)
                commit_as_save_does(master)
            raise Abort()
    assert rows(replica, "tx_routed") == []


@support.parametrize_over_databases()
def test_a_routed_write_commits_with_the_transaction_it_went_to(aliases):
    master, replica = aliases["master"], aliases["replica"]
    fresh_table(replica, "tx_committed")

    def view():
        with routing.route_connections(**{master: replica}):
            support.execute("INSERT INTO tx_committed VALUES ('routed')", alias=master)
            commit_as_save_does(master)
        assert rows(replica, "tx_committed") == [], "committed before its transaction ended"

    committed(replica)(view)()
    assert rows(replica, "tx_committed") == [("routed",)]


def committed(alias):
    """The decorator of a transaction on ``alias`` that commits when the function returns:
    commit_on_success before Django 1.6 (only a decorator on 1.2), atomic since."""
    from django.db import transaction

    if hasattr(transaction, "atomic"):
        return transaction.atomic(using=alias)
    return transaction.commit_on_success(using=alias)


@support.parametrize_over_databases()
def test_a_thread_routed_to_a_shared_connection_writes_in_its_owners_transaction(aliases):
    # As a LiveServerTestCase's server thread saving through the test thread's connection:
    # the test's rollback must undo it, or test isolation breaks.
    master = aliases["master"]
    fresh_table(master, "tx_shared")
    done = threading.Event()
    errors = []

    def serve(wrapper):
        try:
            with routing.route_connections(**{master: wrapper}):
                support.execute("INSERT INTO tx_shared VALUES ('served')", alias=master)
                commit_as_save_does(master)
        except Exception as error:  # handed to the test thread below
            errors.append(error)
        finally:
            done.set()

    with OuterTransaction(master):
        with routing.shared_connection(master) as wrapper:
            worker = threading.Thread(target=serve, args=(wrapper,))
            worker.start()
            assert done.wait(60)
            worker.join(60)
        assert errors == []
        assert support.execute("SELECT COUNT(*) FROM tx_shared", alias=master, fetch=True)[0][0] == 1
    assert rows(master, "tx_shared") == []
