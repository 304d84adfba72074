"""A small legacy Django project for the load and fault tests (tests/stress/test_load_faults.py):
its views write in transactions, raise mid-transaction and log through separate_connection; the
test serves it with gunicorn's gthread worker. Settings come from environment variables
(settings.py), so that one source runs on every Django from 1.2 to 6.1."""
