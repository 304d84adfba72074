"""The URLconf of the tests' settings: small views that report which database they used."""
import sys

from django.db import connections
from django.http import HttpResponse

try:  # Django 2.0+
    from django.urls import re_path as url
except ImportError:
    try:  # Django 1.4-1.11
        from django.conf.urls import url
    except ImportError:  # Django 1.2/1.3
        from django.conf.urls.defaults import url


def ok(request):
    return HttpResponse("ok")


def alias(request):
    """The alias the view's default connection points to, and the legacy reference's."""
    from django.db import connection

    return HttpResponse("%s,%s" % (connections["default"].alias, connection.alias))


class ViewError(Exception):
    pass


def boom(request):
    raise ViewError("the view failed with %s" % connections["default"].alias)


def stream(request):
    """A streaming response whose content is produced after the view returned."""

    def chunks():
        for _ in range(3):
            yield connections["default"].alias + ";"

    try:
        from django.http import StreamingHttpResponse  # Django 1.5+
    except ImportError:
        return HttpResponse(chunks())
    return StreamingHttpResponse(chunks())


def rows(request):
    """The rows of table `served` through the default connection."""
    cursor = connections["default"].cursor()
    cursor.execute("SELECT x FROM served ORDER BY x")
    return HttpResponse(",".join(str(row[0]) for row in cursor.fetchall()))


def replica_notes(request):
    """Notes through the 'pg_standby' alias (the replica, unless routed): POST adds one."""
    wrapper = connections["pg_standby"]
    cursor = wrapper.cursor()
    if request.method == "POST":
        cursor.execute("INSERT INTO notes (text) VALUES (%s)", [request.POST["text"]])
        import support

        support.commit("pg_standby")
    cursor.execute("SELECT pg_is_in_recovery()")
    in_recovery = cursor.fetchone()[0]
    cursor.execute("SELECT text FROM notes ORDER BY text")
    texts = [row[0] for row in cursor.fetchall()]
    return HttpResponse("%s:%s" % ("replica" if in_recovery else "master", ",".join(texts)))


def server_error(request):
    return HttpResponse("server error", status=500)


handler500 = server_error

urlpatterns = [
    url(r"^ok/$", ok),
    url(r"^alias/$", alias),
    url(r"^boom/$", boom),
    url(r"^stream/$", stream),
    url(r"^rows/$", rows),
    url(r"^replica-notes/$", replica_notes),
]

if sys.version_info >= (3, 5):  # async def parses
    from async_cases import async_alias

    urlpatterns.append(url(r"^async-alias/(?P<route>[a-z]*)$", async_alias))
