"""The URLconf of the probe's settings: views that report which database they used."""
import threading

from django.db import connections
from django.http import HttpResponse

try:  # Django 2.0+
    from django.urls import re_path as url
except ImportError:
    try:  # Django 1.4-1.11
        from django.conf.urls import url
    except ImportError:  # Django 1.2/1.3
        from django.conf.urls.defaults import url

# /hold/ waits inside its view until the probe sets ``release``, so that another request can be
# served meanwhile in another thread.
inside = threading.Event()
release = threading.Event()


def alias(request):
    """The alias of the view's default connection, and of the legacy reference."""
    from django.db import connection

    return HttpResponse("%s,%s" % (connections["default"].alias, connection.alias))


def hold(request):
    inside.set()
    release.wait(30)
    return alias(request)


urlpatterns = [
    url(r"^alias/$", alias),
    url(r"^hold/$", hold),
]
