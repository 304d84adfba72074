from django.conf.urls.defaults import patterns, url

urlpatterns = patterns("",
    url(r"^$", "mysite.views.which_connection"),
)
