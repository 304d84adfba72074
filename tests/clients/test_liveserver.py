"""django-liveserver 0.1a2's LiveServerTestCase on Django 1.3 with the backport: ``manage.py
test livenotes`` in a copy of the client site, whose test database is an in-memory sqlite one.
LiveServerThread hands the test thread's connection to its server thread with
``connections._connections[alias] = conn``; the server thread must then serve the note the test
thread saved (Django 1.3 bare: the server thread sees no table; Django 1.4 cannot share an
in-memory database at all). Had the server thread died at that line, LiveServerTestCase would
wait for it forever: the run is killed after TIMEOUT seconds, a failure."""
import pytest

import pg_cluster
import support
from clientsupport import require, run_in_site, site_env

TIMEOUT = 60  # a normal run takes a few seconds


@pytest.mark.skipif(
    support.original_features().thread_local_handler != "missing",
    reason="handler already thread-local: connections._connections is a threading.local, "
    "which django-liveserver's handover (an item assigned into it) cannot write to; Django's "
    "own LiveServerTestCase shares the connection instead")
def test_live_server_thread_serves_the_in_memory_test_database(site_dir):
    require("django_liveserver", "django-liveserver==0.1a2", era=True)
    env = site_env(
        site_dir, "liveserver", "shim-first",
        DJANGO_LIVE_TEST_SERVER_ADDRESS="127.0.0.1:%d" % pg_cluster.free_port())
    finished = run_in_site(site_dir, ["manage.py", "test", "livenotes"], env, TIMEOUT)
    assert not finished.timed_out, "manage.py test livenotes hung:\n" + finished.describe()
    assert finished.returncode == 0, finished.describe()
    assert "Ran 1 test" in finished.err and "\nOK" in finished.err, finished.describe()
