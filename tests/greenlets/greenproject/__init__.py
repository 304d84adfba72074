"""A small Django 1.3-era site for the gunicorn -k gevent / -k eventlet load runs
(tests/greenlets/test_gunicorn_workers.py): its views yield to other greenlets in the middle of
their transactions and say which connection served each query, so that the test can tell
whether two requests that ran at the same time ever shared one."""
