"""The client side of the Celery scenario (test_celery.py), run in the client site's directory
with its settings (CONNLOCAL_CLIENTS_TOOL=celery):

    python run_celery.py send RUN COUNT HOLD   queue COUNT jobs.tasks.hold_and_record tasks
    python run_celery.py collect RUN           RESULT {"runs": [...], "sessions": [...]}: the
                                               tasks' TaskRun rows, and the PostgreSQL
                                               sessions now open on the site's database
                                               (other than this one's; [] on sqlite)
"""
import os
import sys

sys.path.insert(0, os.getcwd())  # the site: settings, jobs (manage.py's layout)

import sitestart  # noqa: E402

FIELDS = ("number", "worker", "dbapi", "session", "carried", "shim", "started", "ended")


def send(run, count, hold):
    import settings  # noqa: F401 (djcelery's loader, the broker)
    from jobs.tasks import hold_and_record

    for number in range(count):
        hold_and_record.delay(run, number, hold)
    return {"sent": count}


def collect(run):
    import settings  # noqa: F401
    from django.db import connection

    from jobs.models import TaskRun

    runs = [dict((field, getattr(row, field)) for field in FIELDS)
            for row in TaskRun.objects.filter(run=run).order_by("number")]
    sessions = []
    if connection.vendor == "postgresql":
        cursor = connection.cursor()
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        sessions = sorted(pid for (pid,) in cursor.fetchall())
    connection.close()
    return {"runs": runs, "sessions": sessions}


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    if command == "send":
        sitestart.report(send(arguments[0], int(arguments[1]), float(arguments[2])))
    elif command == "collect":
        sitestart.report(collect(arguments[0]))
    else:
        raise SystemExit("run_celery.py: unknown command %r (send, collect)" % command)
