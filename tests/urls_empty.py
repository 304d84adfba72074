"""An empty URLconf for the tests' settings (ROOT_URLCONF)."""
urlpatterns = []
