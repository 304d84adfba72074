"""URLs of the benchmark site (figure 5): one small view doing two queries."""
try:
    from django.urls import path

    def _route(pattern, view):
        return path(pattern, view)
except ImportError:  # Django < 2.0
    from django.conf.urls.defaults import url as _url  # Django 1.3; .defaults is gone in 1.6

    def _route(pattern, view):
        return _url("^%s$" % pattern, view)

from django.http import HttpResponse


def items(request):
    from benchapp.models import Item

    item = Item.objects.get(pk=7)
    small = Item.objects.filter(value__lt=50).count()
    return HttpResponse("%s %d\n" % (item.name, small), content_type="text/plain")


urlpatterns = [_route("items/", items)]
