"""Settings of the stress project, read from the environment the test gives gunicorn:

    CONNLOCAL_STRESS_PG_ENGINE   Django's psycopg2 backend (support.postgres_engine())
    CONNLOCAL_STRESS_PG_HOST     the throwaway cluster's address and port (tests/pg_cluster.py)
    CONNLOCAL_STRESS_PG_PORT
    CONNLOCAL_STRESS_PG_USER

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
        # Handed to psycopg2.connect() by every Django of the range.
        "OPTIONS": {"application_name": APPLICATION_NAME},
    }


DATABASES = {
    "default": _database("replica"),
    "master": _database("master"),
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

