"""What ``manage.py connlocal_status`` reports: read-only, built from ``status()``.

``report()`` is plain data (what ``--json`` prints); ``format_report()`` the text for people::

    >>> from connlocal_shim.diagnostics import format_report, report
    >>> print(format_report(report()))
    connlocal-shim 0.1.0 on Django 1.3.7, Python 2.7.18 (CPython)
    ...
"""
import platform

FEATURE_TITLES = (
    ("thread_local_handler", "thread-local django.db.connections"),
    ("handler_setitem", "per-thread connections[alias] = ..."),
    ("handler_delitem", "per-thread del connections[alias]"),
    ("wrappers_without_local", "wrappers without threading.local"),
    ("thread_sharing", "thread-sharing API"),
    ("connection_proxy", "django.db.connection follows the thread"),
)
SHARING_APIS = {"attribute": "allow_thread_sharing", "counter": "inc_thread_sharing()"}
# What a piece of features.detect() means once install() ran (or refused).
MEANING = {
    "native": "native",
    "unavailable": "unavailable on this Django",
}


def _feature_state(state, installed):
    if state == "missing":
        return "backported" if installed else "MISSING (not backported)"
    return MEANING.get(state, str(state))


def _backends(rebuilt_classes):
    """{module: [class names]} of the rebuilt DatabaseWrapper classes."""
    backends = {}
    for dotted in rebuilt_classes:
        module, _, name = dotted.rpartition(".")
        backends.setdefault(module, []).append(name)
    return dict((module, sorted(names)) for module, names in backends.items())


def _per_task_routing(features):
    if not features.get("async_local"):
        return "unavailable (connections are in a threading.local)"
    from connlocal_shim import context
    from connlocal_shim.backport import context_routing_enabled

    if context.ROUTES is None:
        return "unavailable (no contextvars on this Python)"
    if context_routing_enabled():
        return "enabled (route_connections has been used in this process)"
    return "available (enabled on the first use of route_connections)"


def system_check_messages():
    """The messages of connlocal_shim's system checks (Django 1.7+), or None before 1.7."""
    try:
        from django.core import checks as django_checks
    except ImportError:  # Django 1.2-1.5
        return None
    if not hasattr(django_checks, "register"):  # Django 1.6: compatibility checks only
        return None
    from connlocal_shim.checks import ALL_CHECKS

    levels = dict((getattr(django_checks, name), name) for name in
                  ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    messages = []
    for check in ALL_CHECKS:
        for message in check():
            messages.append({
                "id": message.id,
                "level": levels.get(message.level, str(message.level)),
                "msg": message.msg,
                "hint": message.hint,
            })
    return messages


def report():
    """What connlocal_shim found and did in this process, with the versions, as plain data."""
    import django

    import connlocal_shim

    data = connlocal_shim.status()
    features = data["features"]
    data.update(
        connlocal_shim=connlocal_shim.__version__,
        django=django.get_version(),
        python=platform.python_version(),
        python_implementation=platform.python_implementation(),
        backends=_backends(data["rebuilt_classes"]),
        per_task_routing=_per_task_routing(features),
        checks=system_check_messages(),
    )
    # Observe mode's sightings of every process of the site (OBSERVE_FILE), this one's too.
    from connlocal_shim.observe import sightings_file, site_sightings

    data["observed"], data["observed_processes"] = site_sightings()
    data["observe_file"] = sightings_file()
    return data


def _headline(data):
    features = data["features"]
    if data["refused"]:
        return "REFUSED: Django %s left unpatched: %s" % (data["django"], data["refused"])
    if not data["installed"]:
        return ("NOT INSTALLED in this process: add 'connlocal_shim' to INSTALLED_APPS, or call "
                "connlocal_shim.install() in wsgi.py")
    if features["missing"]:
        return "installed: backported thread-local connections (ticket #17258), %d patches" % (
            len(data["patches"]))
    return ("installed: nothing to patch, Django %s has thread-local connections natively "
            "(ticket #17258)" % data["django"])


def _mode_line(data):
    if data.get("mode") == "observe":
        return ("observe: connections stay process-wide as on this Django; cross-thread use "
                "is recorded, not refused (connlocal_shim.set_mode('enforce') to refuse it)")
    if not data["features"]["missing"]:
        return "enforce (this Django refuses cross-thread use of its connections itself)"
    if data["installed"]:
        return "enforce: cross-thread use of a connection raises DatabaseError, as on Django 1.4"
    return "none (not installed)"


def format_report(data):
    """The text ``manage.py connlocal_status`` prints."""
    features = data["features"]
    lines = [
        "connlocal-shim %s on Django %s, Python %s (%s)" % (
            data["connlocal_shim"], data["django"], data["python"],
            data["python_implementation"]),
        "",
        _headline(data),
        "Database layer found: %s" % features["layout"],
        "",
        "Features:",
    ]
    width = max(len(title) for _, title in FEATURE_TITLES) + 2
    api = data["sharing_api"]
    for key, title in FEATURE_TITLES:
        state = _feature_state(features.get(key), data["installed"])
        if key == "thread_sharing" and api is not None:
            state += " (%s)" % SHARING_APIS.get(api, api)
        lines.append("  %s%s" % (title.ljust(width), state))
    lines.append("  %s%s" % ("per-task routing (asyncio)".ljust(width), data["per_task_routing"]))
    for problem in features["problems"]:
        lines.append("  problem: %s" % problem)

    lines += ["", "Mode: %s" % _mode_line(data)]
    observed = data.get("observed") or []
    if observed or data.get("mode") == "observe" or data.get("observe_file"):
        lines.append("Cross-thread use seen (where Django 1.4 and enforce mode raise): %d "
                     "call sites, %d calls, from %d process%s (%s)" % (
                         len(observed), sum(s["count"] for s in observed),
                         data.get("observed_processes", 0),
                         "" if data.get("observed_processes", 0) == 1 else "es",
                         "OBSERVE_FILE %s" % data["observe_file"] if data.get("observe_file")
                         else "this process only: set CONNLOCAL_SHIM['OBSERVE_FILE'] to see "
                         "the site's"))
        for sighting in observed:
            lines.append("  %s in %s(): %d call%s: thread %s called %s() on the '%s' connection "
                         "of thread %s" % (
                             sighting["site"], sighting["function"], sighting["count"],
                             "" if sighting["count"] == 1 else "s", sighting["thread"],
                             sighting["method"], sighting["alias"], sighting["owner_thread"]))

    lines += ["", "Backends processed (DatabaseWrapper classes rebuilt without threading.local):"]
    if data["backends"]:
        for module in sorted(data["backends"]):
            lines.append("  %s: %s" % (module, ", ".join(data["backends"][module])))
    else:
        lines.append("  none (%s)" % (
            "nothing to rebuild" if data["installed"] else "not installed"))
    for unrebuilt in data.get("unrebuilt_classes") or ():
        lines.append("  NOT REBUILT (stays a threading.local wrapper): %s" % unrebuilt)

    lines += ["", "Captured connection references redirected to the current thread's "
                  "connections[alias]:"]
    if data["redirected_references"]:
        for alias in data["redirected_references"]:
            extra = " (django.db.connection and every copy taken at import)" \
                if alias == "default" else " (every copy of its wrapper taken before install)"
            lines.append("  %s%s" % (alias, extra))
    else:
        lines.append("  none (%s)" % (
            "django.db.connection is Django's own proxy" if features["connection_proxy"] ==
            "native" else "not installed"))

    lines += ["", "Patches (%d; connlocal_shim.uninstall() reverts them all):" % len(
        data["patches"])]
    if data["patches"]:
        for patch in data["patches"]:
            lines.append("  %s: %s" % (patch["target"], patch["why"]))
    else:
        lines.append("  none")

    lines += ["", "System checks:"]
    if data["checks"] is None:
        lines.append("  none before Django 1.7 (no system check framework)")
    elif not data["checks"]:
        lines.append("  no messages")
    else:
        for message in data["checks"]:
            lines.append("  %s %s: %s" % (message["id"], message["level"], message["msg"]))
            if message["hint"]:
                lines.append("    HINT: %s" % message["hint"])
    return "\n".join(lines) + "\n"
