"""A site's module that captured django.db.connection at import, before connlocal_shim was
installed (as models, views and utilities of legacy sites do)."""
from django.db import connection


def current_alias():
    return connection.alias
