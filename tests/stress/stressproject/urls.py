"""The stress project's URLconf (url() from where each Django has it, as tests/site_urls.py)."""
try:  # Django 2.0+
    from django.urls import re_path as url
except ImportError:
    try:  # Django 1.4-1.11
        from django.conf.urls import url
    except ImportError:  # Django 1.2/1.3
        from django.conf.urls.defaults import url

from stressproject import views

handler500 = views.server_error

urlpatterns = [
    url(r"^ping/$", views.ping),
    url(r"^read/$", views.read),
    url(r"^write/$", views.write),
    url(r"^fail/$", views.fail),
    url(r"^log/$", views.log),
]
