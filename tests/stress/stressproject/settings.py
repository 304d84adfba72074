"""Settings of the stress project, read from the environment the test gives gunicorn:

    CONNLOCAL_STRESS_PG_ENGINE   Django's psycopg2 backend (support.postgres_engine())
    CONNLOCAL_STRESS_PG_HOST     the throwaway cluster's address and port (tests/pg_cluster.py)
    CONNLOCAL_STRESS_PG_PORT
    CONNLOCAL_STRESS_PG_USER
    CONNLOCAL_STRESS_PG_MASTER      the databases' names (default: master, replica); through
    CONNLOCAL_STRESS_PG_REPLICA     PgBouncer, those it pools (test_pooled_load.py)
    CONNLOCAL_STRESS_PG_AUTOCOMMIT  "1": OPTIONS autocommit (Django 1.2-1.5), as
                                    docs/databases.rst advises behind PgBouncer

"default" is the replica database, where reads go; the pinning middleware sends every writing
request's "default" to "master" (ROUTE_WRITES). Every connection of the site carries the
application_name APPLICATION_NAME, by which the test counts them in pg_stat_activity.
"""
import os

from django.conf import global_settings

APPLICATION_NAME = "connlocal-stress"


def _database(name):
    return {
        "ENGINE": os.environ["CONNLOCAL_STRESS_PG_ENGINE"],
        "NAME": name,
        "USER": os.environ["CONNLOCAL_STRESS_PG_USER"],
        "HOST": os.environ["CONNLOCAL_STRESS_PG_HOST"],
        "PORT": os.environ["CONNLOCAL_STRESS_PG_PORT"],
        "OPTIONS": _options(),
    }


def _options():
    # Handed to psycopg2.connect() by every Django of the range.
    options = {"application_name": APPLICATION_NAME}
    if os.environ.get("CONNLOCAL_STRESS_PG_AUTOCOMMIT") == "1":
        options["autocommit"] = True  # read by Django 1.2-1.5's backend, not passed on
    return options


DATABASES = {
    "default": _database(os.environ.get("CONNLOCAL_STRESS_PG_REPLICA", "replica")),
    "master": _database(os.environ.get("CONNLOCAL_STRESS_PG_MASTER", "master")),
}
CONNLOCAL_SHIM = {"ROUTE_WRITES": {"default": "master"}}

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]  # Django 1.5+ (ignored before)
SECRET_KEY = "connlocal-shim-stress"
USE_TZ = False
INSTALLED_APPS = ["connlocal_shim"]
ROOT_URLCONF = "stressproject.urls"

_PINNING = ["connlocal_shim.middleware.ConnectionPinningMiddleware"]
# MIDDLEWARE (Django 1.10+) where this Django has it, MIDDLEWARE_CLASSES before: the
# middleware works in both styles (tests/test_middleware.py, styles()).
if hasattr(global_settings, "MIDDLEWARE"):
    MIDDLEWARE = _PINNING
else:
    MIDDLEWARE_CLASSES = _PINNING

