"""The URLconf of the tests' settings: one view that answers 200 on every Django."""
from django.http import HttpResponse

try:  # Django 2.0+
    from django.urls import re_path as url
except ImportError:
    try:  # Django 1.4-1.11
        from django.conf.urls import url
    except ImportError:  # Django 1.2/1.3
        from django.conf.urls.defaults import url


def ok(request):
    return HttpResponse("ok")


urlpatterns = [url(r"^ok/$", ok)]
