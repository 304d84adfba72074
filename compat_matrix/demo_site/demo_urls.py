"""The URLconf of the demo site (no views: the probe runs management commands only)."""
urlpatterns = []
