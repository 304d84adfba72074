"""How the scenario scripts (run_toolbar.py, run_wrapt.py) start the client site, as a site's
process starts: settings from the environment, then ``before_install()`` (what the tool-first
order imports or applies before Django's app cache loads), then the app cache, which installs
connlocal_shim from INSTALLED_APPS, then the tables (syncdb; ``migrate --run-syncdb`` on the
Djangos that have no syncdb). The wrapt scenario runs on every Django; the other tools are of
Django 1.3's era (clientsupport.require).

Run with the site's directory as the current one; the report is one line, ``RESULT {json}``.
"""
import json
import os
import sys

sys.path.insert(0, os.getcwd())  # the site: settings, urls, notes (manage.py's layout)


def start(before_install=lambda: None):
    """Start the site; return connlocal_shim.status()'s verdict and what starting raised."""
    import settings

    found = {"order": settings.ORDER, "start_error": None}
    if settings.ORDER == "tool-first":
        before_install()
    try:
        import django
        from django.core.management import call_command

        if hasattr(django, "setup"):  # Django 1.7+: the app registry
            django.setup()
            call_command("migrate", run_syncdb=True, interactive=False, verbosity=0)
        else:
            from django.db.models.loading import get_apps

            get_apps()  # Django 1.3: the app cache imports connlocal_shim.models, which installs
            call_command("syncdb", interactive=False, verbosity=0)
    except Exception as error:  # reported: the test fails on it, saying what it was
        found["start_error"] = "%s: %s" % (type(error).__name__, error)
    import connlocal_shim

    status = connlocal_shim.status()
    found["installed"], found["refused"] = status["installed"], status["refused"]
    return found


def report(result):
    sys.stdout.write("RESULT %s\n" % json.dumps(result, sort_keys=True))
    sys.stdout.flush()
