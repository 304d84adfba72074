"""Settings of the demo site: valid on every Django from 1.2 to 6.1."""
import os
import tempfile

from django.conf import global_settings

DIRECTORY = os.path.join(tempfile.gettempdir(), "connlocal-shim-demo-site")

DEBUG = False
SECRET_KEY = "connlocal-shim-demo-site"
ALLOWED_HOSTS = ["localhost"]
USE_TZ = False
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3",
                "NAME": os.path.join(DIRECTORY, "default.sqlite3")},
    "master": {"ENGINE": "django.db.backends.sqlite3",
               "NAME": os.path.join(DIRECTORY, "master.sqlite3")},
}
INSTALLED_APPS = ["connlocal_shim"]
ROOT_URLCONF = "demo_urls"
# MIDDLEWARE on Django 1.10+, MIDDLEWARE_CLASSES before: the class works in both.
if hasattr(global_settings, "MIDDLEWARE"):
    MIDDLEWARE = ["connlocal_shim.middleware.ConnectionPinningMiddleware"]
else:
    MIDDLEWARE_CLASSES = ["connlocal_shim.middleware.ConnectionPinningMiddleware"]
CONNLOCAL_SHIM = {"ROUTE_WRITES": {"default": "master"}, "STICKY_SECONDS": 15}
