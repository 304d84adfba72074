"""The client site's URLconf (Django 1.3)."""
from django.conf.urls.defaults import patterns, url

urlpatterns = patterns(
    "",
    url(r"^page/$", "notes.views.page"),
    url(r"^notes/$", "notes.views.listing"),
)
