"""South 0.8.4 beside connlocal_shim, listed before it in INSTALLED_APPS or after it: its
``schemamigration --initial``, ``syncdb``, ``migrate``, ``migrate notes zero``, ``migrate``
again and its test runner (``manage.py test``, the test database built by migrating:
SOUTH_TESTS_MIGRATE), each as ``python manage.py ...`` in a copy of the client site. What each
step did is read back from the sqlite file itself."""
import os
import sqlite3

import pytest

from clientsupport import ORDERS, require, run_in_site, site_env

STEP_TIMEOUT = 120


def tables_and_history(directory):
    connection = sqlite3.connect(os.path.join(directory, "site.sqlite3"))
    try:
        tables = set(name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))
        history = []
        if "south_migrationhistory" in tables:
            history = [tuple(row) for row in connection.execute(
                "SELECT app_name, migration FROM south_migrationhistory ORDER BY id")]
        return tables, history
    finally:
        connection.close()


@pytest.mark.parametrize("order", ORDERS)
def test_south_migrates_and_runs_its_tests(order, site_dir):
    require("south", "South==0.8.4", era=True)
    env = site_env(site_dir, "south", order)

    def manage(*args):
        finished = run_in_site(site_dir, ["manage.py"] + list(args), env, STEP_TIMEOUT)
        assert not finished.timed_out and finished.returncode == 0, (
            "South, %s: manage.py %s failed\n%s" % (order, " ".join(args), finished.describe()))
        return finished

    manage("schemamigration", "notes", "--initial")
    assert os.path.isfile(os.path.join(site_dir, "notes", "migrations", "0001_initial.py"))

    manage("syncdb", "--noinput")
    tables, history = tables_and_history(site_dir)
    assert "south_migrationhistory" in tables and "notes_note" not in tables, \
        "syncdb leaves a migrated app to migrate: %s" % sorted(tables)

    manage("migrate")
    tables, history = tables_and_history(site_dir)
    assert "notes_note" in tables and history == [("notes", "0001_initial")], (tables, history)

    manage("migrate", "notes", "zero")
    tables, history = tables_and_history(site_dir)
    assert "notes_note" not in tables and history == [], (sorted(tables), history)

    manage("migrate")
    tables, history = tables_and_history(site_dir)
    assert "notes_note" in tables and history == [("notes", "0001_initial")], (tables, history)

    tested = manage("test", "notes")
    assert "Ran 1 test" in tested.err and "\nOK" in tested.err, tested.describe()
