"""Settings of the client site, from the environment the test gives its process:

    CONNLOCAL_CLIENTS_TOOL     debug_toolbar, south, liveserver, wrapt or celery
    CONNLOCAL_CLIENTS_ORDER    tool-first (the tool's app listed before connlocal_shim) or
                               shim-first
    CONNLOCAL_CLIENTS_SQLITE   the sqlite file of "default"
    CONNLOCAL_CLIENTS_PG_PORT  optional: the throwaway PostgreSQL cluster, as alias "pg"
    CONNLOCAL_CLIENTS_PG_DEFAULT  optional: a database of that cluster to be "default" instead
                               of the sqlite file (the Celery scenario: broker, results, tasks)
"""
import os

TOOL = os.environ["CONNLOCAL_CLIENTS_TOOL"]
ORDER = os.environ["CONNLOCAL_CLIENTS_ORDER"]
if ORDER not in ("tool-first", "shim-first"):
    raise ValueError("CONNLOCAL_CLIENTS_ORDER must be tool-first or shim-first, not %r" % ORDER)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["CONNLOCAL_CLIENTS_SQLITE"],
        # With no TEST_NAME the test runner's database is an in-memory one.
        "OPTIONS": {"timeout": 30},
    }
}
if os.environ.get("CONNLOCAL_CLIENTS_PG_DEFAULT"):
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql_psycopg2",
        "NAME": os.environ["CONNLOCAL_CLIENTS_PG_DEFAULT"],
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ["CONNLOCAL_CLIENTS_PG_PORT"],
    }
if os.environ.get("CONNLOCAL_CLIENTS_PG_PORT"):
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql_psycopg2",
        "NAME": "master",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ["CONNLOCAL_CLIENTS_PG_PORT"],
    }

TOOL_APPS = {"debug_toolbar": ["debug_toolbar"], "south": ["south"],
             "celery": ["djcelery", "kombu.transport.django"]}.get(TOOL, [])
if ORDER == "tool-first":
    INSTALLED_APPS = TOOL_APPS + ["connlocal_shim"]
else:
    INSTALLED_APPS = ["connlocal_shim"] + TOOL_APPS
INSTALLED_APPS += ["notes"] + {"liveserver": ["livenotes"], "celery": ["jobs"]}.get(TOOL, [])

MIDDLEWARE_CLASSES = (
    ["debug_toolbar.middleware.DebugToolbarMiddleware"] if TOOL == "debug_toolbar" else [])
DEBUG = TOOL == "debug_toolbar"  # the toolbar shows itself only with DEBUG and INTERNAL_IPS
INTERNAL_IPS = ("127.0.0.1",)
DEBUG_TOOLBAR_CONFIG = {"INTERCEPT_REDIRECTS": False}
SOUTH_TESTS_MIGRATE = True  # South's test runner builds the test database by migrating
SECRET_KEY = "connlocal-shim-clients"
# django-liveserver serves static and media files beside the site (StaticFilesHandler).
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
ROOT_URLCONF = "urls"

if TOOL == "celery":
    # django-celery's own setup, as its docs of the day gave it; the broker is the database
    # (kombu's Django transport), so the scenario needs no other server.
    import uuid

    # kombu 2.5 imports uuid._uuid_generate_random, which Python 2.7.11 removed (it read
    # libuuid through ctypes); None is what kombu's own fallback expects.
    if not hasattr(uuid, "_uuid_generate_random"):
        uuid._uuid_generate_random = None
    import djcelery

    djcelery.setup_loader()
    BROKER_URL = "django://"
    BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.1}
    CELERYD_PREFETCH_MULTIPLIER = 1
