"""django-debug-toolbar 0.9.4's SQL panel beside connlocal_shim, in both orders: it wraps
``BaseDatabaseWrapper.cursor`` when its panel module is imported, before install (a site's own
panel imported at startup) or after (the toolbar loads its panels at the first request). Through
Django's test client, one request from the main thread and then PARTIES at once from the main
thread and other threads: each request's toolbar must list its own two queries, and no other
request's (the toolbar keeps one per thread)."""
import os

import pytest

from clientsupport import ORDERS, require, result_of, run_in_site, site_env

HERE = os.path.dirname(os.path.abspath(__file__))
PARTIES = 3


@pytest.mark.parametrize("order", ORDERS)
def test_the_sql_panel_records_each_thread_s_queries(order, site_dir):
    require("debug_toolbar", "django-debug-toolbar==0.9.4", era=True)
    env = site_env(site_dir, "debug_toolbar", order, CONNLOCAL_CLIENTS_PARTIES=str(PARTIES))
    finished = run_in_site(site_dir, [os.path.join(HERE, "run_toolbar.py")], env)
    result = result_of(finished)
    problems = []
    if result["start_error"] or not result["installed"]:
        problems.append("the site's start: %s (installed: %s, refused: %s)" % (
            result["start_error"], result["installed"], result["refused"]))
    for name in result["names"]:
        request = result["requests"].get(name) or {"error": "never answered"}
        where = "%s (thread %s)" % (name, request.get("thread"))
        if request.get("error"):
            problems.append("%s: %s" % (where, request["error"]))
            continue
        if request["status"] != 200 or not request["toolbar"]:
            problems.append("%s: status %s, toolbar shown: %s" % (
                where, request["status"], request["toolbar"]))
        if request["markers"] != [name] or request["queries"] != 2:
            problems.append("%s: its SQL panel lists %s queries, of requests %s; expected its "
                            "own 2" % (where, request["queries"], request["markers"]))
    assert not problems, "django-debug-toolbar, %s: %d problems:\n%s\n\n%s" % (
        order, len(problems), "\n".join(problems), finished.describe())
