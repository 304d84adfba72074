"""Settings of the greenlet site, from the environment the test gives gunicorn:

    CONNLOCAL_GREEN_DATABASE   "sqlite" or "postgres"
    CONNLOCAL_GREEN_SQLITE     the sqlite file (sqlite)
    CONNLOCAL_GREEN_PG_ENGINE, _HOST, _PORT, _USER   the throwaway cluster (postgres)

Every PostgreSQL connection of the site carries APPLICATION_NAME, by which the test counts
them in pg_stat_activity. The sqlite file is the test's too: the test counts the worker's open
file descriptors on it.
"""
import os

APPLICATION_NAME = "connlocal-green-site"
DATABASE_KIND = os.environ["CONNLOCAL_GREEN_DATABASE"]

if DATABASE_KIND == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": os.environ["CONNLOCAL_GREEN_PG_ENGINE"],
            "NAME": "master",
            "USER": os.environ["CONNLOCAL_GREEN_PG_USER"],
            "HOST": os.environ["CONNLOCAL_GREEN_PG_HOST"],
            "PORT": os.environ["CONNLOCAL_GREEN_PG_PORT"],
            "OPTIONS": {"application_name": APPLICATION_NAME},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["CONNLOCAL_GREEN_SQLITE"],
            # Writers never yield while they hold the file's lock (views.py): a short wait.
            "OPTIONS": {"timeout": 5},
        }
    }

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SECRET_KEY = "connlocal-shim-greenlets"
USE_TZ = False
INSTALLED_APPS = ["connlocal_shim"]
ROOT_URLCONF = "greenproject.urls"
MIDDLEWARE_CLASSES = ()
