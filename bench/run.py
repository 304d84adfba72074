#!/usr/bin/env python3
"""connlocal-shim's benchmark (issue 7): what the shim costs, side by side, in one run.

    python3 bench/run.py                      # everything: sets up bench/.venvs on first run
    python3 bench/run.py --figures 1,2 --repeats 30
    python3 bench/run.py --quick              # fewer repeats, shorter load: a smoke run

Figures (docs/benchmarks.rst):

1. ``connections["default"]``: Django 1.3.7 without the shim, with it (enforce and observe
   mode), Django 1.4.22 native.
2. Attribute access through ``django.db.connection`` (``.ops``, ``.alias``), same variants.
3. ORM round trips on in-memory sqlite, Django 1.3.7 with and without the shim.
4. ``route_connections`` enter + exit (made once, and made each time) against the bare
   ``p = c[k]; c[k] = w; c[k] = p`` on Python 2.7 / Django 1.2.7 and 1.3.7, and against other
   routers' blocks measured in the same workers on Python 3.12 / Django 4.2 and Python 3.13 /
   Django 6.1: django-dynamic-db-router's ``in_database``, django-multidb-router's
   ``use_primary_db`` (issue 15's targets).
5. Requests per second of a two-query view under gunicorn's gthread worker (8 threads) on a
   throwaway PostgreSQL cluster (tests/pg_cluster.py), loaded from 127.0.0.1 by wrk (or, where
   wrk is missing, a bounded Python client).
6. Wrappers, DB-API and server connections alive after 1,000 short-lived threads.

Each variant runs in its own long-lived worker process (bench/worker.py) on its own venv; the
variants of a figure are interleaved, one at a time, and repeated: the table gives min and median
over the repeats and ratios of the minima. The machine is shared, so only ratios taken in the
same run mean anything. Rows with a target say whether it is met, on the minima and/or (with
--callgrind) on instructions per op. A row whose case fails in its worker (an anchor that does
not import or does not route) is printed as an error row and the run exits non-zero; an anchor
that pip would not install in an env is printed as such. Results go to
bench/results/latest.json (and a timestamped copy).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

import envs  # noqa: E402
from throwaway import free_port  # noqa: E402 (tests/throwaway.py)

# variant -> (env, shim installed, label)
VARIANTS = {
    "dj12shim": ("py27-django12", True, "Django 1.2.7 + shim"),
    "dj13": ("py27-django13", False, "Django 1.3.7, no shim"),
    "dj13shim": ("py27-django13", True, "Django 1.3.7 + shim"),
    # Issue 25: observe mode, connections process-wide as bare 1.3, cross-thread use recorded.
    "dj13observe": ("py27-django13", "observe", "Django 1.3.7 + shim, observe mode"),
    "dj14": ("py27-django14", False, "Django 1.4.22 native"),
    "dj42": ("py312-django42", True, "Django 4.2 + shim (native)"),
    # Figure 4's reference for connections[alias] before routing: a process that never routes
    # (the first block enables the per-task overlay on Django 3.0+ for the rest of a process).
    "dj42plain": ("py312-django42", True, "Django 4.2 + shim, never routed"),
    "dj61": ("py313-django61", True, "Django 6.1 + shim (native)"),
    "dj61plain": ("py313-django61", True, "Django 6.1 + shim, never routed"),
}
# figure -> the variants it runs (their workers, servers or envs)
FIGURE_VARIANTS = {
    1: ("dj13", "dj13shim", "dj13observe", "dj14", "dj61"),
    2: ("dj13", "dj13shim", "dj13observe", "dj14"),
    3: ("dj13", "dj13shim", "dj13observe", "dj14"),
    4: ("dj12shim", "dj13shim", "dj42", "dj42plain", "dj61", "dj61plain"),
    5: ("dj13", "dj13shim", "dj14", "dj61"),
    6: ("dj13", "dj13shim", "dj14"),
}


def log(message):
    sys.stderr.write("bench: %s\n" % message)
    sys.stderr.flush()


class Worker(object):
    """A bench/worker.py process for one variant, answering one JSON request at a time."""

    def __init__(self, variant, pythons, db="sqlite", pg_port=None):
        env, shim, self.label = VARIANTS[variant]
        command = [pythons[env], os.path.join(HERE, "worker.py"), "--db", db]
        if pg_port is not None:
            command += ["--pg-port", str(pg_port)]
        if shim:
            command.append("--shim")
        if shim == "observe":
            command += ["--mode", "observe"]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        )
        self.info = self._read()

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("bench: worker %s died (see its traceback above)" % self.label)
        return json.loads(line)

    def request(self, allow_error=False, **request):
        """The worker's reply; one with an "error" ends the run unless ``allow_error``."""
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self._read()
        if "error" in reply:
            log("worker %s, %r: %s" % (self.label, request, reply.get("traceback", reply["error"])))
            if not allow_error:
                raise SystemExit("bench: worker %s: %s" % (self.label, reply["error"]))
        return reply

    def where(self):
        """"Py3.13 Dj6.1.3": the worker's own versions, as it reported them."""
        return "Py%s Dj%s" % (".".join(self.info["python"].split(".")[:2]), self.info["django"])

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def summarize(samples):
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "samples": samples,
    }


def interleaved(rows, workers, repeats, seconds):
    """Time every (key, variant, case) row ``repeats`` times, rotating the order each round.
    A row whose case fails in its worker is timed no more and comes back as {"error": ...}
    (shown as an error row; the run then exits non-zero)."""
    samples = dict((key, []) for key, _, _ in rows)
    errors = {}
    timed = {}  # key -> what the worker says it timed (an anchor's module and version)
    for round_index in range(repeats):
        shift = round_index % len(rows)
        for key, variant, case in rows[shift:] + rows[:shift]:
            if key in errors:
                continue
            reply = workers[variant].request(op="time", case=case, seconds=seconds,
                                             allow_error=True)
            if "error" in reply:
                errors[key] = reply["error"]
            else:
                samples[key].append(reply["ns"])
                timed[key] = dict((k, reply[k]) for k in ("module", "version") if k in reply)
    stats = {}
    for key, variant, case in rows:
        stats[key] = {"error": errors[key]} if key in errors else summarize(samples[key])
        stats[key].update(variant=variant, case=case, **timed.get(key, {}))
    return stats


# -- figures ------------------------------------------------------------------------------------

def figure1(workers, options):
    rows = [
        ("dj13", "dj13", "getitem"),
        ("dj13shim", "dj13shim", "getitem"),
        ("dj13observe", "dj13observe", "getitem"),
        ("dj14", "dj14", "getitem"),
        ("dj61", "dj61", "getitem"),
    ]
    stats = interleaved(rows, workers, options.repeats, options.sample_seconds)
    return {
        "title": 'connections["default"] (ns per lookup)',
        "unit": "ns",
        "rows": [
            row(stats, "dj13", "Django 1.3.7, no shim (its dict)"),
            # Issue 23: at most 0.55x Django 1.4's, on the minima and in instructions (was 1.0).
            row(stats, "dj13shim", "Django 1.3.7 + shim", vs="dj14", target=0.55, basis="both",
                vs_label="1.4", also=("dj13", None), also_label="1.3.7's dict"),
            row(stats, "dj13observe", "Django 1.3.7 + shim, observe mode", vs="dj13shim",
                vs_label="enforce", also=("dj13", None), also_label="1.3.7's dict"),
            row(stats, "dj14", "Django 1.4.22 native"),
            row(stats, "dj61", "Django 6.1 native (Python 3.13; for reference)"),
        ],
    }


def figure2(workers, options):
    rows = []
    for attr in ("ops", "alias"):
        rows += [
            ("dj13-" + attr, "dj13", "attr_%s_module" % attr),
            ("dj13shim-legacy-" + attr, "dj13shim", "attr_%s_legacy" % attr),
            ("dj13shim-module-" + attr, "dj13shim", "attr_%s_module" % attr),
            ("dj13observe-module-" + attr, "dj13observe", "attr_%s_module" % attr),
            ("dj14-" + attr, "dj14", "attr_%s_module" % attr),
        ]
    stats = interleaved(rows, workers, options.repeats, options.sample_seconds)
    same = workers["dj13shim"].info.get("legacy_is_module_connection")
    result = {
        "title": "attribute access through django.db.connection (ns per access)",
        "unit": "ns",
        "rows": [],
        "note": (
            "With the shim, django.db.connection and the reference django.db.models captured "
            "at import are %s." % ("one and the same object" if same else "different objects")
        ),
    }
    for attr in ("ops", "alias"):
        result["rows"] += [
            row(stats, "dj13-" + attr, "Django 1.3.7, no shim: connection.%s" % attr),
            # Issue 15: at most 0.35x Django 1.4's proxy (was: 1.0, aim 0.5).
            row(stats, "dj13shim-legacy-" + attr,
                "1.3.7 + shim: legacy reference (django.db.models.connection).%s" % attr,
                vs="dj14-" + attr, target=0.35, basis="both", vs_label="1.4",
                also=("dj13-" + attr, None), also_label="1.3.7"),
            row(stats, "dj13shim-module-" + attr,
                "1.3.7 + shim: django.db.connection.%s" % attr,
                vs="dj14-" + attr, target=0.35, basis="both", vs_label="1.4",
                also=("dj13-" + attr, None), also_label="1.3.7"),
            row(stats, "dj13observe-module-" + attr,
                "1.3.7 + shim, observe mode: django.db.connection.%s" % attr,
                vs="dj13shim-module-" + attr, vs_label="enforce",
                also=("dj13-" + attr, None), also_label="1.3.7"),
            row(stats, "dj14-" + attr, "Django 1.4.22: DefaultConnectionProxy.%s" % attr),
        ]
    return result


def figure3(workers, options):
    rows = []
    for case in ("orm_get", "orm_count"):
        rows += [(variant + "-" + case, variant, case)
                 for variant in ("dj13", "dj13shim", "dj13observe", "dj14")]
    stats = interleaved(rows, workers, options.orm_repeats, options.orm_sample_seconds)
    for value in stats.values():
        for name in ("min", "median"):
            value[name] /= 1000.0
        value["samples"] = [sample / 1000.0 for sample in value["samples"]]
    labels = {
        "orm_get": "Item.objects.get(pk=7)",
        "orm_count": "Item.objects.filter(value__lt=50).count()",
    }
    result = {"title": "ORM round trips, sqlite :memory: (us per call)", "unit": "us", "rows": []}
    for case in ("orm_get", "orm_count"):
        result["rows"] += [
            row(stats, "dj13-" + case, "1.3.7, no shim: %s" % labels[case]),
            row(stats, "dj13shim-" + case, "1.3.7 + shim: %s" % labels[case],
                vs="dj13-" + case, target=1.02, basis="both", vs_label="1.3.7"),
            # Issue 25: observe mode's cost on the ORM, at most 1.02x bare 1.3.7.
            row(stats, "dj13observe-" + case, "1.3.7 + shim, observe mode: %s" % labels[case],
                vs="dj13-" + case, target=1.02, basis="both", vs_label="1.3.7"),
            row(stats, "dj14-" + case, "1.4.22 native (reference): %s" % labels[case]),
        ]
    return result


ROUTE_CASES = ("route_bare", "route_alias", "route_wrapper", "route_alias_new",
               "route_wrapper_new")
ROUTE_LABELS = {
    "route_bare": "bare: p = c[k]; c[k] = w; c[k] = p",
    "route_alias": "route_connections(default='other'), made once",
    "route_wrapper": "route_connections(default=<shared wrapper>), made once",
    "route_alias_new": "with route_connections(default='other'), made each time",
    "route_wrapper_new": "with route_connections(default=<wrapper>), made each time",
}
# anchor (bench/envs.py) -> its cases (bench/worker.py) and their labels
ANCHOR_ROWS = (
    ("in_database", "anchor_in_database", "in_database('other'), made once"),
    ("in_database", "anchor_in_database_new", "with in_database('other'), made each time"),
    ("use_primary_db", "anchor_use_primary_db", "with use_primary_db"),
)
# our made-once blocks are held to in_database made once, the made-each-time ones to it made
# each time (issue 15: "at or under in_database's cost on Django 3.0+")
IN_DATABASE_FOR = {
    "route_alias": "anchor_in_database", "route_wrapper": "anchor_in_database",
    "route_alias_new": "anchor_in_database_new", "route_wrapper_new": "anchor_in_database_new",
}
FIG4_OLD = ("dj12shim", "dj13shim")  # the backport: <= 2.0x the bare re-point
FIG4_NEW = (("dj42", "dj42plain"), ("dj61", "dj61plain"))  # native: <= in_database


def figure4(workers, options):
    rows = [(v + "-" + c, v, c) for v in FIG4_OLD for c in ROUTE_CASES]
    missing = {}  # row key -> (variant, case, why it was not measured)
    for variant, plain in FIG4_NEW:
        rows += [(variant + "-" + c, variant, c) for c in ROUTE_CASES]
        record = envs.anchors(VARIANTS[variant][0])
        for anchor, case, _ in ANCHOR_ROWS:
            key = variant + "-" + case
            info = record.get(anchor)
            if info is None:
                missing[key] = (variant, case, "not tried in %s (bench/envs.py ANCHORS)"
                                % VARIANTS[variant][0])
            elif not info["installed"]:
                missing[key] = (variant, case, info["reason"])
            else:
                rows.append((key, variant, case))
        rows += [(variant + "-getitem_after_routing", variant, "getitem_after_routing"),
                 (plain + "-getitem", plain, "getitem")]
    stats = interleaved(rows, workers, options.repeats, options.sample_seconds)
    for key, (variant, case, reason) in missing.items():
        stats[key] = {"not_installed": reason, "variant": variant, "case": case}
    result = {
        "title": "route_connections enter + exit (ns per block), against the bare re-point "
                 "and other routers' blocks",
        "unit": "ns",
        "rows": [],
        "note": ("Anchors, timed in the same workers: in_database is %s, use_primary_db %s "
                 "(bench/envs.py). They only set a thread-local that their router reads; "
                 "route_connections re-points the connection itself."
                 % tuple(envs.ANCHOR_PACKAGES[a].replace("==", " ")
                         for a in ("in_database", "use_primary_db"))),
    }
    for variant in FIG4_OLD:
        where = workers[variant].where()
        bare = variant + "-route_bare"
        for case in ROUTE_CASES:
            key = variant + "-" + case
            if case == "route_bare":
                result["rows"].append(row(stats, key, "%s: %s" % (where, ROUTE_LABELS[case]),
                                          group=where))
            else:
                result["rows"].append(row(
                    stats, key, "%s: %s" % (where, ROUTE_LABELS[case]), group=where,
                    vs=bare, vs_label="bare", target=2.0, basis="both"))
    for variant, plain in FIG4_NEW:
        where = workers[variant].where()
        bare = variant + "-route_bare"
        for case in ROUTE_CASES:
            key = variant + "-" + case
            if case == "route_bare":
                result["rows"].append(row(stats, key, "%s: %s" % (where, ROUTE_LABELS[case]),
                                          group=where))
                continue
            result["rows"].append(row(
                stats, key, "%s: %s" % (where, ROUTE_LABELS[case]), group=where,
                vs=variant + "-" + IN_DATABASE_FOR[case], vs_label="in_database", target=1.0,
                basis="both", also=(bare, None), also_label="bare"))
        for _, case, label in ANCHOR_ROWS:
            key = variant + "-" + case
            result["rows"].append(row(stats, key, "%s: %s" % (where, label),
                                      group=where, vs=bare, vs_label="bare"))
        result["rows"].append(row(
            stats, plain + "-getitem",
            '%s: connections["default"], never routed (Django\'s own)' % where, group=where))
        result["rows"].append(row(
            stats, variant + "-getitem_after_routing",
            '%s: connections["default"] once routing is enabled' % where, group=where,
            vs=plain + "-getitem", vs_label="Django's", target=1.05, basis="instructions"))
    return result


def row(stats, key, label, vs=None, target=None, aim=None, also=None, basis="timeit",
        vs_label=None, also_label=None, group=None):
    """One table row; ``vs`` the key of the reference row in ``stats`` (ratio of minima).
    ``basis``: what ``target`` is judged on, "timeit" (the minima), "instructions" (--callgrind)
    or "both". ``group``: the label's prefix, printed once above the rows that share it.
    A row whose case failed keeps "error"; one whose anchor did not install keeps
    "not_installed"; either way its reference and target stay in the row, unmet."""
    value = stats[key]
    result = {"key": key, "label": label, "variant": value.get("variant"),
              "case": value.get("case")}
    if group is not None:
        result["group"] = group
    for field in ("error", "not_installed", "module", "version"):
        if field in value:
            result[field] = value[field]
    if "min" in value:
        result.update(min=value["min"], median=value["median"], samples=value["samples"])
    if vs is not None:
        result.update(vs=vs, vs_label=vs_label or vs, target=target, aim=aim,
                      target_basis=basis)
        reference = stats.get(vs, {})
        if "min" in value and "min" in reference:
            result["ratio"] = value["min"] / reference["min"]
            result["ratio_median"] = value["median"] / reference["median"]
            if target is not None and basis in ("timeit", "both"):
                result["meets_target"] = result["ratio"] <= target
        elif "min" in value:
            result["vs_missing"] = reference.get("error") or reference.get("not_installed") \
                or "not measured"
    if also is not None:
        other_key, other_value = also
        reference = stats[other_key].get("min") if other_key in stats else other_value
        if reference and "min" in value:
            result["also_vs"] = other_key
            result["also_label"] = also_label or other_key
            result["also_ratio"] = value["min"] / reference
    return result


# -- figure 5: gunicorn ---------------------------------------------------------------------------

class Server(object):
    """gunicorn's gthread worker, 8 threads, serving bench_wsgi for one variant."""

    def __init__(self, variant, pg_port, log_directory):
        env, shim, self.label = VARIANTS[variant]
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/items/" % self.port
        self.log_path = os.path.join(log_directory, "gunicorn-%s.log" % variant)
        self.log_file = open(self.log_path, "w")
        gunicorn = os.path.join(envs.VENVS, env, "bin", "gunicorn")
        self.process = subprocess.Popen(
            [gunicorn, "--worker-class", "gthread", "--threads", "8", "--workers", "1",
             "--bind", "127.0.0.1:%d" % self.port, "--pythonpath", HERE,
             "--log-level", "warning", "--timeout", "60", "bench_wsgi:application"],
            stdout=self.log_file, stderr=subprocess.STDOUT, cwd=HERE,
            env=dict(os.environ, BENCH_PG_PORT=str(pg_port), BENCH_SHIM="1" if shim else "0",
                     PYTHONDONTWRITEBYTECODE="1"),
        )

    def wait_ready(self, timeout=60.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return response.read().decode()
            except OSError:
                time.sleep(0.2)
        self.stop()
        with open(self.log_path) as handle:
            raise SystemExit("bench: gunicorn for %s did not serve %s:\n%s"
                             % (self.label, self.url, handle.read()[-3000:]))

    def cpu_seconds(self):
        """CPU time of the gunicorn master and its worker, all threads, so far (schedstat's
        nanoseconds on CPU): the work a request costs the server, much less disturbed by
        other load than requests/s. gthread's pool threads live as long as the worker."""
        pids = [self.process.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as handle:
                        if int(handle.read().rsplit(")", 1)[1].split()[1]) == self.process.pid:
                            pids.append(int(entry))
                except (IOError, OSError, IndexError, ValueError):
                    continue
        total = 0
        for pid in pids:
            try:
                tasks = os.listdir("/proc/%d/task" % pid)
            except OSError:
                continue
            for task in tasks:
                try:
                    with open("/proc/%d/task/%s/schedstat" % (pid, task)) as handle:
                        total += int(handle.read().split()[0])
                except (IOError, OSError, ValueError, IndexError):
                    continue
        return total / 1e9

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


def load_wrk(url, seconds, connections):
    output = subprocess.run(
        ["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--timeout", "10s", url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=True,
    ).stdout
    rps, errors, requests = None, 0, 0
    for line in output.splitlines():
        line = line.strip()
        if " requests in " in line:
            requests = int(line.split()[0])
        elif line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        elif line.startswith("Non-2xx or 3xx responses:"):
            errors += int(line.split()[-1])
        elif line.startswith("Socket errors:"):
            errors += sum(int(part.split()[-1]) for part in line.split(":", 1)[1].split(","))
    if rps is None:
        raise SystemExit("bench: could not read wrk's output:\n" + output)
    return rps, errors, requests


def load_python(url, seconds, connections):
    """A bounded keep-alive client: ``connections`` threads, each one request at a time."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.time() + seconds
    counts = [0] * connections
    errors = [0] * connections

    def client(index):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.time() < deadline:
            try:
                connection.request("GET", parts.path)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    counts[index] += 1
                else:
                    errors[index] += 1
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.close()

    started = time.time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.time() - started), sum(errors), sum(counts) + sum(errors)


def figure5(pythons, cluster, options):
    variants = ["dj13", "dj13shim", "dj14", "dj61"]
    client = "wrk" if shutil.which("wrk") and not options.python_client else "python"
    load = load_wrk if client == "wrk" else load_python
    log_directory = os.path.join(RESULTS, "logs")
    os.makedirs(log_directory, exist_ok=True)
    servers = {}
    try:
        for variant in variants:
            servers[variant] = Server(variant, cluster.port, log_directory)
        for variant in variants:
            servers[variant].wait_ready()
        for variant in variants:  # warm up: imports, first requests of each thread
            load(servers[variant].url, 2, options.load_connections)
        samples = dict((variant, []) for variant in variants)
        cpu = dict((variant, []) for variant in variants)
        errors = dict((variant, 0) for variant in variants)
        for round_index in range(options.load_rounds):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                server = servers[variant]
                cpu_before = server.cpu_seconds()
                rps, failed, requests = load(server.url, options.load_seconds,
                                             options.load_connections)
                samples[variant].append(rps)
                cpu[variant].append((server.cpu_seconds() - cpu_before) / max(requests, 1) * 1e6)
                errors[variant] += failed
    finally:
        for server in servers.values():
            server.stop()
    stats = {}
    for variant, values in samples.items():
        stats[variant] = {"min": min(values), "median": statistics.median(values),
                          "max": max(values), "samples": values}
    result = {
        "title": "requests/s, gunicorn gthread (1 worker x 8 threads), view with 2 queries, "
                 "PostgreSQL %s, %s client, %d connections, %d x %ds rounds"
                 % (cluster.version, client, options.load_connections, options.load_rounds,
                    options.load_seconds),
        "unit": "req/s",
        "higher_is_better": True,
        "client": client,
        "rows": [],
    }
    for variant in variants:
        value = stats[variant]
        item = {"key": variant, "label": VARIANTS[variant][2], "min": value["min"],
                "median": value["median"], "max": value["max"], "samples": value["samples"],
                "errors": errors[variant], "server_cpu_us_per_request": cpu[variant],
                "server_cpu_us_min": min(cpu[variant]),
                "server_cpu_us_median": statistics.median(cpu[variant])}
        if variant != "dj13":
            item["server_cpu_ratio"] = (
                item["server_cpu_us_min"] / min(cpu["dj13"]) if min(cpu["dj13"]) else None
            )
        if variant != "dj13":
            # Throughput: compare the best rounds (least disturbed by other load) and medians.
            item["vs"] = "dj13"
            item["vs_label"] = "1.3.7"
            item["ratio"] = value["max"] / stats["dj13"]["max"]
            item["ratio_median"] = value["median"] / stats["dj13"]["median"]
            if variant == "dj13shim":
                item["target"] = 0.98
                item["meets_target"] = item["ratio"] >= 0.98
        result["rows"].append(item)
    return result


# -- figure 6: short-lived threads ----------------------------------------------------------------

def figure6(pythons, cluster, options):
    result = {
        "title": "after %d short-lived threads (%d at a time), each one ORM query on "
                 "PostgreSQL, no close()" % (options.threads, options.thread_concurrency),
        "rows": [],
    }
    for variant in ("dj13", "dj13shim", "dj14"):
        worker = Worker(variant, pythons, db="postgres", pg_port=cluster.port)
        try:
            reply = worker.request(op="threads", count=options.threads,
                                   concurrency=options.thread_concurrency)
        finally:
            worker.close()
        reply["key"] = variant
        reply["label"] = VARIANTS[variant][2]
        result["rows"].append(reply)
    return result


def start_cluster():
    import pg_cluster

    directory = pg_cluster.find_server_bin()
    if directory is None:
        raise SystemExit("bench: figures 5 and 6 need PostgreSQL's server programs (%s)"
                         % pg_cluster.INSTALL_HINT)
    cluster = pg_cluster.PostgresCluster(directory).start(("bench",))
    import bench_django

    table = bench_django.PG_TABLE
    rows = ("INSERT INTO benchapp_item (name, value) SELECT 'item ' || i, i "
            "FROM generate_series(1, %d) AS i" % bench_django.ROWS)
    cluster._run(
        "psql", "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--host", "127.0.0.1",
        "--port", str(cluster.port), "--username", "postgres", "--dbname", "bench",
        "--command", table, "--command", rows,
    )
    return cluster


# -- callgrind: instruction counts, independent of the machine's load ------------------------------

# figure -> [(row key, variant, case, rounds)]; an op costs (Ir(2N) - Ir(N)) / (N * unroll), the
# unroll as the worker reports it. Figure 4's rows are its own (callgrind_rows()).
CALLGRIND_ROWS = {
    1: [("dj13", "dj13", "getitem", 5000), ("dj13shim", "dj13shim", "getitem", 5000),
        ("dj13observe", "dj13observe", "getitem", 5000),
        ("dj14", "dj14", "getitem", 5000), ("dj61", "dj61", "getitem", 5000)],
    2: [("dj13-ops", "dj13", "attr_ops_module", 5000),
        ("dj13shim-module-ops", "dj13shim", "attr_ops_module", 5000),
        ("dj13shim-legacy-ops", "dj13shim", "attr_ops_legacy", 5000),
        ("dj13observe-module-ops", "dj13observe", "attr_ops_module", 5000),
        ("dj14-ops", "dj14", "attr_ops_module", 5000),
        ("dj13-alias", "dj13", "attr_alias_module", 5000),
        ("dj13shim-module-alias", "dj13shim", "attr_alias_module", 5000),
        ("dj13shim-legacy-alias", "dj13shim", "attr_alias_legacy", 5000),
        ("dj13observe-module-alias", "dj13observe", "attr_alias_module", 5000),
        ("dj14-alias", "dj14", "attr_alias_module", 5000)],
    3: [("dj13-orm_get", "dj13", "orm_get", 500), ("dj13shim-orm_get", "dj13shim", "orm_get", 500),
        ("dj13observe-orm_get", "dj13observe", "orm_get", 500),
        ("dj13-orm_count", "dj13", "orm_count", 500),
        ("dj13shim-orm_count", "dj13shim", "orm_count", 500),
        ("dj13observe-orm_count", "dj13observe", "orm_count", 500)],
    5: [("dj13", "dj13", "request", 20), ("dj13shim", "dj13shim", "request", 20),
        ("dj14", "dj14", "request", 20)],
}


def callgrind_rows(number, report):
    """Figure ``number``'s rows to count: figure 4's are every row it measured (those that
    failed or did not install are not counted)."""
    if number != 4:
        return CALLGRIND_ROWS[number]
    rows = []
    for item in report["figures"].get("4", {}).get("rows", ()):
        if "min" in item and item.get("case"):
            rounds = 5000 if item["case"].startswith("getitem") else 1000
            rows.append((item["key"], item["variant"], item["case"], rounds))
    return rows


def callgrind_instructions(pythons, variant, case, rounds, pg_port=None):
    """(instructions of the whole process, the case's unroll) for one --count run."""
    env_name, shim, _ = VARIANTS[variant]
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               pythons[env_name], os.path.join(HERE, "worker.py"),
               "--db", "postgres" if pg_port else "sqlite", "--count", case,
               "--rounds", str(rounds)]
    if pg_port:
        command[command.index("--db") + 2:command.index("--db") + 2] = ["--pg-port", str(pg_port)]
    if shim:
        command.append("--shim")
    if shim == "observe":
        command += ["--mode", "observe"]
    completed = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0"),
    )
    unroll = None
    for line in completed.stdout.splitlines():
        if line.startswith("{"):
            unroll = json.loads(line).get("unroll")
    for line in completed.stderr.splitlines():
        if "Collected :" in line and completed.returncode == 0 and unroll:
            return int(line.split(":")[-1]), unroll
    raise SystemExit("bench: callgrind failed for %s %s (exit %s):\n%s"
                     % (variant, case, completed.returncode, completed.stderr[-3000:]))


def callgrind_figure(number, pythons, report, pg_port=None):
    """Instructions per op for the rows of ``number``, two runs of each (N and 2N rounds),
    two runs at a time; written into the figure's rows as "instructions", with the ratio to
    the row's reference and, where the row's target is judged on instructions, whether met."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = []
    for key, variant, case, rounds in callgrind_rows(number, report):
        jobs += [(key, variant, case, rounds), (key, variant, case, 2 * rounds)]
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(
            lambda job: callgrind_instructions(pythons, job[1], job[2], job[3], pg_port), jobs))
    per_op = {}
    for index in range(0, len(jobs), 2):
        key, _, case, rounds = jobs[index]
        (short, unroll), (long_, _) = counts[index], counts[index + 1]
        per_op[key] = (long_ - short) / float(rounds * unroll)
    figure = report["figures"].get(str(number))
    if figure is None:
        return
    for item in figure["rows"]:
        if item["key"] not in per_op:
            continue
        item["instructions"] = per_op[item["key"]]
        reference = per_op.get(item.get("vs"))
        if reference:
            item["instructions_ratio"] = per_op[item["key"]] / reference
            if item.get("target") is not None and \
                    item.get("target_basis") in ("instructions", "both"):
                item["meets_target_instructions"] = item["instructions_ratio"] <= item["target"]
        also = per_op.get(item.get("also_vs"))
        if also:
            item["also_instructions_ratio"] = per_op[item["key"]] / also
    figure["instructions_note"] = (
        "instructions per op: valgrind --tool=callgrind, (Ir(2N rounds) - Ir(N rounds)) / N, "
        "including the unrolled loop's share of overhead"
    )


# -- output -------------------------------------------------------------------------------------

def format_value(value, unit):
    if value is None:
        return "-"
    if unit == "req/s":
        return "%.0f" % value
    if value >= 100:
        return "%.0f" % value
    return "%.1f" % value


def yes_no(value):
    return "?" if value is None else ("yes" if value else "NO")


def target_text(item, higher_is_better=False):
    """"<= 2.00x bare", with "(instr)" when judged on instructions only; "" without a target."""
    if item.get("target") is None:
        return ""
    text = "%s %.2fx %s" % (">=" if higher_is_better else "<=", item["target"],
                            item.get("vs_label") or item.get("vs", ""))
    if item.get("target_basis") == "instructions":
        text += " (instr)"
    if item.get("aim") is not None:
        text += " [aim %.2f]" % item["aim"]
    return text


def met_text(item):
    """Whether the row meets its target: "yes", "NO", "?" (not measured: needs --callgrind, or
    the reference failed), for the minima and/or the instructions as the target says."""
    if item.get("target") is None:
        return ""
    basis = item.get("target_basis", "timeit")
    parts = []
    if basis in ("timeit", "both"):
        parts.append(yes_no(item.get("meets_target")))
    if basis in ("instructions", "both"):
        parts.append("instr " + yes_no(item.get("meets_target_instructions")))
    return ", ".join(parts)


def target_rows(report):
    """Every (figure, row) with a target."""
    for number in sorted(report["figures"], key=int):
        for item in report["figures"][number].get("rows", ()):
            if item.get("target") is not None:
                yield number, item


def failed_rows(report):
    """Rows whose case failed in its worker: (figure, label, error)."""
    return [(number, item["label"], item["error"])
            for number in sorted(report["figures"], key=int)
            for item in report["figures"][number].get("rows", ()) if "error" in item]


LABEL_WIDTH = 62


def print_table(figure_number, figure, out):
    out.write("\n%d. %s\n" % (figure_number, figure["title"]))
    if figure_number == 6:
        out.write("   %-36s %9s %12s %13s %9s %14s\n" % (
            "variant, when", "wrappers", "DB-API open", "server conns", "RSS KiB",
            "failed threads"))
        for item in figure["rows"]:
            for phase in ("before", "after", "after_gc"):
                census = item[phase]
                out.write("   %-36s %9s %12s %13s %9s %14s\n" % (
                    "%s, %s" % (item["label"].replace("Django ", ""),
                                {"after_gc": "after gc.collect()"}.get(phase, phase)),
                    census["wrappers"], census["dbapi_connections_open"],
                    census["server_connections"], census["rss_kib"],
                    item["errors"] if phase == "after" else ""))
        for item in figure["rows"]:
            if item["errors"]:
                out.write("   %s: first failure: %s\n" % (
                    item["label"], item["first_errors"][0].strip().replace("\n", " ")))
        out.write("   (wrappers: DatabaseWrapper objects alive, with the shim including the one\n"
                  "   legacy object django.db.connection; server conns: pg_stat_activity)\n")
        return
    unit = figure["unit"]
    higher = figure.get("higher_is_better")
    line = "   %-" + str(LABEL_WIDTH) + "s %8s %8s  %-18s %10s %6s  %-28s %s\n"
    out.write(line % ("", "best" if higher else "min", "median", "ratio",
                      "instr", "ratio", "target", "met"))
    group = None
    for item in figure["rows"]:
        label = item["label"]
        if item.get("group") and label.startswith(item["group"] + ": "):
            if item["group"] != group:
                out.write("   %s\n" % item["group"])
            label = "  " + label[len(item["group"]) + 2:]
        group = item.get("group")
        label = label[:LABEL_WIDTH]
        if "error" in item or "not_installed" in item:
            what = ("ERROR: %s" % item["error"]) if "error" in item \
                else ("not measured, did not install: %s" % item["not_installed"])
            out.write(("   %-" + str(LABEL_WIDTH) + "s %s\n") % (label, what[:160]))
            if item.get("target") is not None:
                out.write(("   %-" + str(LABEL_WIDTH) + "s target %s: NO (not measured)\n")
                          % ("", target_text(item, higher)))
            continue
        ratio = ""
        if "ratio" in item:
            ratio = "%.2fx %s" % (item["ratio"], item.get("vs_label") or item["vs"])
        elif item.get("vs_missing"):
            ratio = "%s: -" % (item.get("vs_label") or item["vs"])
        instr = ratio_i = ""
        if "instructions" in item:
            instr = "{:,.0f}".format(item["instructions"])
            if "instructions_ratio" in item:
                ratio_i = "%.2fx" % item["instructions_ratio"]
        best = item["max"] if higher else item["min"]
        out.write(line % (label, format_value(best, unit), format_value(item["median"], unit),
                          ratio, instr, ratio_i, target_text(item, higher), met_text(item)))
        extras = []
        if item.get("vs_missing"):
            extras.append("no %s to compare with (%s)"
                          % (item.get("vs_label") or item["vs"], item["vs_missing"][:100]))
        if "also_ratio" in item:
            text = "%.2fx %s" % (item["also_ratio"], item.get("also_label") or item["also_vs"])
            if "also_instructions_ratio" in item:
                text += " (%.2fx in instructions)" % item["also_instructions_ratio"]
            extras.append(text)
        if "server_cpu_us_min" in item:
            text = "server CPU %.0f us/req" % item["server_cpu_us_min"]
            if item.get("server_cpu_ratio"):
                text += " (%.2fx)" % item["server_cpu_ratio"]
            extras.append(text)
        if item.get("errors"):
            extras.append("%d errors" % item["errors"])
        if extras:
            out.write(("   %-" + str(LABEL_WIDTH) + "s   also: %s\n") % ("", "; ".join(extras)))
    if figure.get("note"):
        import textwrap

        out.write(textwrap.fill(figure["note"], 100, initial_indent="   ",
                                subsequent_indent="   ") + "\n")
    with_targets = [item for item in figure["rows"] if item.get("target") is not None]
    if with_targets:
        judged = [met_text(item) for item in with_targets]
        met = sum(1 for text in judged if "NO" not in text and "?" not in text)
        missed = sum(1 for text in judged if "NO" in text)
        out.write("   targets: %d rows, %d met in full, %d missed, %d not judged (?: no "
                  "--callgrind, or the row or its reference not measured)\n"
                  % (len(judged), met, missed, len(judged) - met - missed))
    if higher:
        out.write("   (first column: best round; ratios: best rounds, medians in the JSON; server CPU:\n"
                  "   the gunicorn processes' user+system time per request, min over rounds)\n")
    else:
        out.write("   (ratios: of the minima; instr: instructions per op, with --callgrind)\n")


def print_report(report, figures, out):
    out.write("connlocal-shim benchmark, %s, %d CPUs, load %.1f -> %.1f, %.0f s\n" % (
        report["started"], report["host"]["cpus"], report["host"]["load_average_before"][0],
        report["host"]["load_average_after"][0], report["seconds"]))
    for number in figures:
        print_table(number, report["figures"][str(number)], out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", default="1,2,3,4,5,6")
    parser.add_argument("--repeats", type=int, default=15, help="rounds of figures 1, 2, 4")
    parser.add_argument("--sample-seconds", type=float, default=0.05)
    parser.add_argument("--orm-repeats", type=int, default=15)
    parser.add_argument("--orm-sample-seconds", type=float, default=0.2)
    parser.add_argument("--load-rounds", type=int, default=6)
    parser.add_argument("--load-seconds", type=int, default=5)
    parser.add_argument("--load-connections", type=int, default=16)
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--thread-concurrency", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few repeats")
    parser.add_argument("--callgrind", action="store_true",
                        help="also count instructions per op with valgrind (load-independent)")
    parser.add_argument("--json", default=os.path.join(RESULTS, "latest.json"))
    parser.add_argument("--show", metavar="JSON",
                        help="print the tables of a saved run (such as bench/last_run.json)")
    options = parser.parse_args()
    if options.show:
        with open(options.show) as handle:
            report = json.load(handle)
        print_report(report, sorted(int(number) for number in report["figures"]), sys.stdout)
        return
    if options.quick:
        options.repeats = options.orm_repeats = 3
        options.load_rounds, options.load_seconds = 1, 2
        options.threads = 100
    try:
        figures = sorted(set(int(part) for part in options.figures.split(",") if part.strip()))
    except ValueError:
        parser.error("--figures: a comma-separated list of figure numbers, got %r"
                     % options.figures)
    unknown = [number for number in figures if number not in FIGURE_VARIANTS]
    if unknown or not figures:
        parser.error("--figures: no figure %s (there are %s)" % (
            ", ".join(map(str, unknown)) or "given",
            ", ".join(map(str, sorted(FIGURE_VARIANTS)))))
    variants = [v for v in VARIANTS if any(v in FIGURE_VARIANTS[n] for n in figures)]

    pythons = envs.ensure_envs(VARIANTS[variant][0] for variant in variants)
    os.makedirs(RESULTS, exist_ok=True)
    options.done = {}
    started = time.time()
    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()},
        "options": dict((k, v) for k, v in vars(options).items() if k != "done"),
        "figures": {},
    }
    workers = {}
    cluster = None
    try:
        if any(number in figures for number in (1, 2, 3, 4)):
            for variant in variants:
                if any(variant in FIGURE_VARIANTS[n] for n in figures if n <= 4):
                    workers[variant] = Worker(variant, pythons)
            report["workers"] = dict((v, w.info) for v, w in workers.items())
        for number, function in ((1, figure1), (2, figure2), (3, figure3), (4, figure4)):
            if number in figures:
                log("figure %d" % number)
                options.done[number] = report["figures"][str(number)] = function(workers, options)
        for worker in workers.values():
            worker.close()
        if options.callgrind:
            for number in (1, 2, 3, 4):
                if number in figures:
                    log("figure %d: counting instructions with callgrind" % number)
                    callgrind_figure(number, pythons, report)
        if 5 in figures or 6 in figures:
            log("starting a throwaway PostgreSQL cluster")
            cluster = start_cluster()
            report["postgres"] = cluster.version
        for number, function in ((5, figure5), (6, figure6)):
            if number in figures:
                log("figure %d" % number)
                report["figures"][str(number)] = function(pythons, cluster, options)
        if options.callgrind and 5 in figures:
            log("figure 5: counting instructions per request (in-process WSGI) with callgrind")
            callgrind_figure(5, pythons, report, pg_port=cluster.port)
    finally:
        for worker in workers.values():
            worker.close()
        if cluster is not None:
            cluster.stop()
    report["seconds"] = time.time() - started
    report["host"]["load_average_after"] = os.getloadavg()
    out = sys.stdout
    print_report(report, figures, out)
    with open(options.json, "w") as handle:
        json.dump(report, handle, indent=1, sort_keys=True)
    stamped = os.path.join(RESULTS, time.strftime("run-%Y%m%d-%H%M%S.json"))
    shutil.copyfile(options.json, stamped)
    out.write("\nJSON: %s\n" % options.json)
    failed = failed_rows(report)
    if failed:
        for number, label, error in failed:
            log("figure %s: %s: %s" % (number, label, error))
        raise SystemExit("bench: %d rows failed (error rows above)" % len(failed))


if __name__ == "__main__":
    main()
