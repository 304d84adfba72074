"""Settings of the client site, from the environment the test gives its process:

    CONNLOCAL_CLIENTS_TOOL     debug_toolbar, south, liveserver or wrapt
    CONNLOCAL_CLIENTS_ORDER    tool-first (the tool's app listed before connlocal_shim) or
                               shim-first
    CONNLOCAL_CLIENTS_SQLITE   the sqlite file of "default"
    CONNLOCAL_CLIENTS_PG_PORT  optional: the throwaway PostgreSQL cluster, as alias "pg"
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
if os.environ.get("CONNLOCAL_CLIENTS_PG_PORT"):
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql_psycopg2",
        "NAME": "master",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ["CONNLOCAL_CLIENTS_PG_PORT"],
    }

TOOL_APPS = {"debug_toolbar": ["debug_toolbar"], "south": ["south"]}.get(TOOL, [])
if ORDER == "tool-first":
    INSTALLED_APPS = TOOL_APPS + ["connlocal_shim"]
else:
    INSTALLED_APPS = ["connlocal_shim"] + TOOL_APPS
INSTALLED_APPS += ["notes"] + (["livenotes"] if TOOL == "liveserver" else [])

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
