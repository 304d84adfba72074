"""The task of tests/clients/test_celery.py, found by django-celery's autodiscovery."""
import os
import time

from celery.task import task


def current_worker():
    """The pool thread, or the pool's greenlet (eventlet patched thread.get_ident)."""
    import thread

    return "%d:%d" % (os.getpid(), thread.get_ident())


@task
def hold_and_record(run, number, hold):
    """Open the task's connection, hold its transaction open for ``hold`` seconds, and write
    what it saw in that transaction."""
    from django.db import connection, transaction

    import connlocal_shim
    from jobs.models import TaskRun

    carried = connection.connection is not None
    started = time.time()
    transaction.enter_transaction_management()
    transaction.managed(True)
    try:
        cursor = connection.cursor()
        session = None
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
            session = cursor.fetchone()[0]
        else:
            cursor.execute("SELECT 1")
        dbapi = "%d:%d" % (os.getpid(), id(connection.connection))
        time.sleep(hold)  # another task runs meanwhile (eventlet: this yields)
        TaskRun.objects.create(
            run=run, number=number, worker=current_worker(), dbapi=dbapi, session=session,
            carried=carried, shim=connlocal_shim.status()["installed"], started=started,
            ended=time.time())
        transaction.commit()
    finally:
        transaction.rollback()
        transaction.leave_transaction_management()
    return number
