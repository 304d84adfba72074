"""The site's own SQL panel, as sites customised django-debug-toolbar 0.9: importing it imports
debug_toolbar.panels.sql, which wraps BaseDatabaseWrapper.cursor there and then. The tool-first
scenarios import it before Django's app cache loads (and connlocal_shim installs)."""
from debug_toolbar.panels.sql import SQLDebugPanel


class SiteSQLPanel(SQLDebugPanel):
    name = "SiteSQL"
