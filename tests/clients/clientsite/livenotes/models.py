"""No models: an app, so that the test runner finds tests.py."""
