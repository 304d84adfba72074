"""The columns of the compatibility matrix: shared by the probe (run inside each tox env, on
Python 2.7 to 3.13) and by the renderer. Plain data only: no Django, no f-strings.

Each feature column has a state and a result:

- state: ``native`` (Django has it, or for the routing API: it stands on Django's own
  thread-local connections), ``backported`` (connlocal_shim's backport of ticket #17258 provides
  it, or for the routing API: it stands on the backport), ``unavailable`` (neither, on this
  Django), ``missing`` (the backport should provide it and did not: install refused);
- result: ``passed`` or ``failed`` (the probe checked the behaviour with real threads), or
  ``not applicable`` (unavailable: nothing to check).
"""

NATIVE = "native"
BACKPORTED = "backported"
UNAVAILABLE = "unavailable"
MISSING = "missing"

PASSED = "passed"
FAILED = "failed"
NOT_APPLICABLE = "not applicable"

# (key, title, short label for the terminal, what the probe checks)
FEATURES = (
    ("thread_local_handler", "thread-local handler", "handler",
     "django.db.connections gives each thread its own DatabaseWrapper per alias: two live "
     "threads and the main thread get three different wrappers, each thread always the same one"),
    ("handler_setitem", "per-thread connections[alias] = ...", "assign",
     "connections['default'] = connections['other'] in one thread re-points it there only; "
     "another thread, alive at the same time, still sees its own 'default' (and "
     "del connections[alias] forgets the thread's wrapper only, where Django has it)"),
    ("wrappers_without_local", "wrappers without threading.local", "no-local",
     "no DatabaseWrapper class has threading.local in its MRO, and an attribute set on a "
     "wrapper in one thread is seen by another thread holding the same object"),
    ("thread_sharing", "thread-sharing API", "sharing",
     "another thread using an unshared wrapper gets DatabaseError; once shared "
     "(allow_thread_sharing / inc_thread_sharing()) it reads the owner's in-memory sqlite table"),
    ("connection_proxy", "legacy connection follows the thread", "connection",
     "a django.db.connection reference captured before install follows a thread's re-pointed "
     "'default' (alias and the sqlite file its cursor opens) while another thread's does not"),
    ("route_connections", "route_connections", "route",
     "a block routes one thread only while another thread runs unrouted; as a decorator; an "
     "exception leaves routing restored; two aliases swap"),
    ("separate_connection", "separate_connection", "separate",
     "an audit row written through separate_connection('default') commits while the thread's "
     "own transaction rolls back; the separate connection is closed on exit"),
    ("shared_connection", "shared_connection", "shared",
     "another thread routed to shared_connection('memory') reads the in-memory table; after the "
     "block the same use raises DatabaseError"),
    ("middleware", "ConnectionPinningMiddleware", "middleware",
     "through django.test.Client: a POST is routed (and the legacy connection with it), the "
     "sticky cookie routes the next GET, a concurrent GET in another thread is not routed, "
     "nothing leaks to the serving thread"),
    ("async_safety", "async safety", "async",
     "three concurrent asyncio tasks, two routed differently with async with "
     "route_connections, see their own routing in sync_to_async threads, before and after a "
     "switch"),
)

FEATURE_KEYS = tuple(key for key, _, _, _ in FEATURES)

# Not a feature of Django: the diagnostics shipped with connlocal_shim, run as a site runs them.
DIAGNOSTICS = (
    "diagnostics", "connlocal_status", "status",
    "manage.py connlocal_status (text and --json) runs in a small site, and its JSON agrees with "
    "what the probe found; on Django 1.7+ manage.py check reports the shim's checks",
)
