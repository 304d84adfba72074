import threading

from django.db import connection, connections
from django.http import HttpResponse


def which_connection(request):
    """Queries through the django.db.connection captured at import, and says whether it is the
    serving thread's own connections["default"] (thread-local, as on Django 1.4)."""
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    own = connection.connection is connections["default"].connection
    return HttpResponse("thread %s, own connection: %s\n" % (threading.current_thread().name, own),
                        content_type="text/plain")
