"""Django settings shared by the benchmark's workers and its WSGI site (any Django 1.2-6.1).

It imports Django only inside its functions: bench/run.py reads its constants without Django.
"""

PG_DATABASE = "bench"
PG_USER = "postgres"  # tests/pg_cluster.py's superuser, trust authentication on 127.0.0.1

SQLITE_TABLE = (
    "CREATE TABLE benchapp_item (id integer NOT NULL PRIMARY KEY AUTOINCREMENT, "
    "name varchar(50) NOT NULL, value integer NOT NULL)"
)
PG_TABLE = (
    "CREATE TABLE benchapp_item (id serial NOT NULL PRIMARY KEY, "
    "name varchar(50) NOT NULL, value integer NOT NULL)"
)
ROWS = 100


def _postgres_engine():
    import django

    # postgresql_psycopg2 was renamed postgresql in Django 1.9 and removed in 3.0; on 1.3
    # "postgresql" is the old psycopg1 backend.
    if django.VERSION >= (1, 9):
        return "django.db.backends.postgresql"
    return "django.db.backends.postgresql_psycopg2"


def databases(db, pg_port=None):
    if db == "sqlite":
        return {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        }
    settings = {
        "ENGINE": _postgres_engine(), "NAME": PG_DATABASE, "USER": PG_USER,
        "HOST": "127.0.0.1", "PORT": str(pg_port),
    }
    return {"default": settings, "other": dict(settings)}


def configure(db="sqlite", pg_port=None, shim=False, mode="enforce"):
    """Configure Django; install connlocal_shim after django.db.models captured its reference,
    as a site's wsgi.py does. Returns the legacy reference django.db.models took at import."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        DATABASES=databases(db, pg_port),
        INSTALLED_APPS=["benchapp"],
        ROOT_URLCONF="bench_urls",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        SECRET_KEY="connlocal-shim-bench",
        MIDDLEWARE_CLASSES=(),
        MIDDLEWARE=[],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        TIME_ZONE="UTC",
        USE_TZ=False,
        CONNLOCAL_SHIM={"MODE": mode},
    )
    setup = getattr(django, "setup", None)  # Django 1.7+
    if setup is not None:
        setup()
    from django.db import models

    legacy = getattr(models, "connection", None)  # gone from django.db.models in Django 1.6+
    if shim:
        import connlocal_shim

        connlocal_shim.install()
        assert connlocal_shim.current_mode() == mode, connlocal_shim.current_mode()
    return legacy


def create_table(connection, db):
    cursor = connection.cursor()
    cursor.execute(SQLITE_TABLE if db == "sqlite" else PG_TABLE)
    for index in range(1, ROWS + 1):
        cursor.execute(
            "INSERT INTO benchapp_item (name, value) VALUES (%s, %s)", ["item %d" % index, index]
        )
    commit = getattr(connection, "commit_unless_managed", None)  # Django 1.3-1.5
    if commit is None and not hasattr(connection, "commit"):  # Django 1.2: a module function
        from django.db import transaction

        def commit():
            transaction.commit_unless_managed(using=connection.alias)
    commit = commit or connection.commit
    commit()
