"""A runnable tour of connlocal_shim's routing API, on any Django from 1.2 to 6.1.

Run it with a Python that has Django and connlocal-shim installed: your site's virtualenv, or
one of the test envs, which the test command builds (docs/routing.rst, "A runnable tour")::

    python3 -m compat_matrix --tests -e py313-django61
    .tox/py313-django61/bin/python examples/routing_demo.py

It configures two sqlite databases in a temporary directory ("default" and "master"), then shows
route_connections, separate_connection and shared_connection at work with real threads. Without
Django or connlocal-shim it says which is missing and exits with status 2.
"""
import os
import shutil
import sys
import tempfile
import threading


def has_module(name):
    """Whether ``name`` can be imported here (without importing it: connlocal_shim imports
    Django's database layer, which needs settings first)."""
    try:
        from importlib.util import find_spec
    except ImportError:  # Python 2
        import imp

        try:
            imp.find_module(name)
        except ImportError:
            return False
        return True
    return find_spec(name) is not None


for needed, what in (("django", "Django (1.2 to 6.1)"), ("connlocal_shim", "connlocal-shim")):
    if not has_module(needed):
        sys.stderr.write(
            "routing_demo.py: this Python (%s, %s) has no %s. Run the demo with a Python that "
            "has Django and connlocal-shim installed, such as a test env's: "
            "python3 -m compat_matrix --tests -e py313-django61, then "
            ".tox/py313-django61/bin/python examples/routing_demo.py\n" % (
                sys.executable, sys.version.split()[0], what))
        sys.exit(2)

from django.conf import settings  # noqa: E402

directory = tempfile.mkdtemp(prefix="connlocal-demo-")
settings.configure(
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3",
                    "NAME": os.path.join(directory, "default.sqlite3")},
        "master": {"ENGINE": "django.db.backends.sqlite3",
                   "NAME": os.path.join(directory, "master.sqlite3")},
    },
    INSTALLED_APPS=["connlocal_shim"],
)
import django  # noqa: E402

import connlocal_shim  # noqa: E402
from connlocal_shim import route_connections, separate_connection, shared_connection  # noqa: E402

if hasattr(django, "setup"):  # Django 1.7+: INSTALLED_APPS installs the shim
    django.setup()
else:  # before, what wsgi.py does (INSTALLED_APPS installs it when the app cache loads)
    connlocal_shim.install()

from django.db import connection, connections, transaction  # noqa: E402


def run(sql, params=(), wrapper=connection):
    cursor = wrapper.cursor()  # the legacy reference follows the thread's routing
    cursor.execute(sql, params)
    return [tuple(row) for row in cursor.fetchall()]


def commit():
    """Commit outside a transaction block: Django < 1.6 needs it, later Djangos autocommit."""
    if hasattr(transaction, "commit_unless_managed"):
        transaction.commit_unless_managed()


class rolled_back(object):
    """A transaction on 'default' that rolls back at the end (as a failing view's would)."""

    def __enter__(self):
        if hasattr(transaction, "atomic"):  # Django 1.6+
            self.block = transaction.atomic()
            self.block.__enter__()
        else:
            self.block = None
            transaction.enter_transaction_management()
            transaction.managed(True)

    def __exit__(self, *exc_info):
        if self.block is not None:
            transaction.set_rollback(True)
            self.block.__exit__(None, None, None)
        else:
            transaction.rollback()
            transaction.leave_transaction_management()


for alias in ("default", "master"):
    with route_connections(default=alias):
        run("CREATE TABLE notes (text VARCHAR(50))")
        run("CREATE TABLE audit (text VARCHAR(50))")
        commit()

# 1. Re-point "default" to "master" for this thread only, as a decorator or a block.
@route_connections(default="master")
def write_note(text):
    run("INSERT INTO notes VALUES (%s)", [text])
    commit()
    return connections["default"].alias


print("write_note ran on: %s" % write_note("hello"))
seen = []
worker = threading.Thread(target=lambda: seen.append(connections["default"].alias))
with route_connections(default="master"):
    worker.start()
    worker.join()
print("meanwhile another thread used: %s" % seen[0])
print("master has %d note(s), default has %d" % (
    len(run("SELECT * FROM notes", wrapper=connections["master"])),
    len(run("SELECT * FROM notes"))))

# 2. An audit row that commits even though the surrounding transaction rolls back.
with rolled_back():
    with route_connections(default=separate_connection("default")):
        run("INSERT INTO audit VALUES ('refund requested')")
        commit()
    run("INSERT INTO notes VALUES ('refund')")
print("after the rollback: audit rows: %s; notes: %d" % (
    ", ".join(row[0] for row in run("SELECT text FROM audit")),
    len(run("SELECT text FROM notes"))))

# 3. Lend this thread's connection to another thread for a block.
with shared_connection("default") as wrapper:
    answers = []

    def serve():
        with route_connections(default=wrapper):
            answers.append(run("SELECT COUNT(*) FROM audit")[0][0])

    server = threading.Thread(target=serve)
    server.start()
    server.join()
print("the other thread counted %d audit row(s) through our connection" % answers[0])

for alias in ("default", "master"):
    connections[alias].close()
shutil.rmtree(directory)
