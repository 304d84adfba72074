"""A third-party backend with an old-style mixin (Python 2 classic class), as some sites had:
a logging mixin written before new-style classes were the rule."""
from django.db.backends.sqlite3.base import DatabaseWrapper as SqliteDatabaseWrapper
from django.db.backends.sqlite3.base import *  # noqa: F401,F403 (a backend module exports these)


class LoggingMixin:  # no base: an old-style class on Python 2
    def cursor(self):
        self.cursors_opened = getattr(self, "cursors_opened", 0) + 1
        return SqliteDatabaseWrapper.cursor(self)


class DatabaseWrapper(LoggingMixin, SqliteDatabaseWrapper):
    pass
