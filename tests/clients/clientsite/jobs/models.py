from django.db import models


class TaskRun(models.Model):
    """What one run of jobs.tasks.hold_and_record saw (tests/clients/test_celery.py)."""
    run = models.CharField(max_length=40, db_index=True)
    number = models.IntegerField()
    worker = models.CharField(max_length=40)  # the pool thread or greenlet: "pid:ident"
    dbapi = models.CharField(max_length=40)  # "pid:id()" of the DB-API connection it used
    session = models.IntegerField(null=True)  # PostgreSQL: pg_backend_pid()
    carried = models.BooleanField()  # the connection was already open when the task began
    shim = models.BooleanField()  # connlocal_shim.status()["installed"] in the worker
    started = models.FloatField()
    ended = models.FloatField()
