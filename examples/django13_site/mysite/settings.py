# A Django 1.2/1.3 site's settings, as startproject writes them, cut to what the example needs
# (docs/deploying.rst, "Django 1.2/1.3: a quick start").
DEBUG = False
TEMPLATE_DEBUG = DEBUG
ALLOWED_HOSTS = ["*"]  # Django 1.3.6+; ignored by 1.2
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}
SECRET_KEY = "example-only-not-secret"
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = (
    "connlocal_shim",
)
