"""A third-party database backend, as sites have them: it subclasses a built-in backend's
DatabaseWrapper, calls super() by its module-global name, and overrides a guarded method."""
from django.db.backends.sqlite3.base import DatabaseWrapper as SqliteDatabaseWrapper
from django.db.backends.sqlite3.base import *  # noqa: F401,F403 (a backend module exports these)


class DatabaseWrapper(SqliteDatabaseWrapper):
    vendor_label = "thirdparty"

    def __init__(self, *args, **kwargs):
        super(DatabaseWrapper, self).__init__(*args, **kwargs)
        self.closes = 0

    def close(self):
        self.closes += 1
        super(DatabaseWrapper, self).close()
