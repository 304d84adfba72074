"""The greenlet site's URLconf (Django 1.3: django.conf.urls.defaults)."""
try:
    from django.conf.urls import url
except ImportError:  # Django 1.2/1.3
    from django.conf.urls.defaults import url

from greenproject import views

handler500 = views.server_error

urlpatterns = [
    url(r"^ping/$", views.ping),
    url(r"^read/$", views.read),
    url(r"^write/$", views.write),
    url(r"^fail/$", views.fail),
    url(r"^log/$", views.log),
]
