#!/usr/bin/env python3
"""connlocal-shim's benchmark (issue 7): what the shim costs, side by side, in one run.

    python3 bench/run.py                      # everything: sets up bench/.venvs on first run
    python3 bench/run.py --figures 1,2 --repeats 30
    python3 bench/run.py --quick              # fewer repeats, shorter load: a smoke run

Figures (README.rst, "Benchmarks"):

1. ``connections["default"]``: Django 1.3.7 without the shim, with it, Django 1.4.22 native.
2. Attribute access through ``django.db.connection`` (``.ops``, ``.alias``), same variants.
3. ORM round trips on in-memory sqlite, Django 1.3.7 with and without the shim.
4. ``route_connections`` enter + exit against ``connections[k] = v`` and restore, on
   Python 2.7 / Django 1.3.7 and Python 3.13 / Django 6.1.
5. Requests per second of a two-query view under gunicorn's gthread worker (8 threads) on a
   throwaway PostgreSQL cluster (tests/pg_cluster.py), loaded from 127.0.0.1 by wrk (or, where
   wrk is missing, a bounded Python client).
6. Wrappers, DB-API and server connections alive after 1,000 short-lived threads.

Each variant runs in its own long-lived worker process (bench/worker.py) on its own venv; the
variants of a figure are interleaved, one at a time, and repeated: the table gives min and median
over the repeats and ratios of the minima. The machine is shared, so only ratios taken in the
same run mean anything. Results go to bench/results/latest.json (and a timestamped copy).
"""
import argparse
import json
import os
import shutil
import signal
import socket
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

# variant -> (env, shim installed, label)
VARIANTS = {
    "dj13": ("py27-django13", False, "Django 1.3.7, no shim"),
    "dj13shim": ("py27-django13", True, "Django 1.3.7 + shim"),
    "dj14": ("py27-django14", False, "Django 1.4.22 native"),
    "dj61": ("py313-django61", True, "Django 6.1 + shim (native)"),
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

    def request(self, **request):
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise SystemExit("bench: worker %s: %s" % (self.label, reply["error"]))
        return reply

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
    """Time every (key, variant, case) row ``repeats`` times, rotating the order each round."""
    samples = dict((key, []) for key, _, _ in rows)
    for round_index in range(repeats):
        shift = round_index % len(rows)
        for key, variant, case in rows[shift:] + rows[:shift]:
            reply = workers[variant].request(op="time", case=case, seconds=seconds)
            samples[key].append(reply["ns"])
    return dict((key, summarize(values)) for key, values in samples.items())


# -- figures ------------------------------------------------------------------------------------

def figure1(workers, options):
    rows = [
        ("dj13", "dj13", "getitem"),
        ("dj13shim", "dj13shim", "getitem"),
        ("dj14", "dj14", "getitem"),
        ("dj61", "dj61", "getitem"),
    ]
    stats = interleaved(rows, workers, options.repeats, options.sample_seconds)
    return {
        "title": 'connections["default"] (ns per lookup)',
        "unit": "ns",
        "rows": [
            row(stats, "dj13", "Django 1.3.7, no shim (its dict)"),
            row(stats, "dj13shim", "Django 1.3.7 + shim", vs="dj14", target=1.0,
                also=("dj13", None)),
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
            row(stats, "dj13shim-legacy-" + attr,
                "1.3.7 + shim: legacy reference (django.db.models.connection).%s" % attr,
                vs="dj14-" + attr, target=1.0, aim=0.5, also=("dj13-" + attr, None)),
            row(stats, "dj13shim-module-" + attr,
                "1.3.7 + shim: django.db.connection.%s" % attr,
                vs="dj14-" + attr, target=1.0, aim=0.5, also=("dj13-" + attr, None)),
            row(stats, "dj14-" + attr, "Django 1.4.22: DefaultConnectionProxy.%s" % attr),
        ]
    return result


def figure3(workers, options):
    rows = []
    for case in ("orm_get", "orm_count"):
        rows += [(variant + "-" + case, variant, case) for variant in ("dj13", "dj13shim", "dj14")]
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
                vs="dj13-" + case, target=1.02),
            row(stats, "dj14-" + case, "1.4.22 native (reference): %s" % labels[case]),
        ]
    return result


def figure4(workers, options):
    cases = ("route_bare", "route_alias", "route_wrapper", "route_alias_new")
    rows = [(v + "-" + c, v, c) for v in ("dj13shim", "dj61") for c in cases]
    rows += [("dj61-getitem_after_routing", "dj61", "getitem_after_routing")]
    stats = interleaved(rows, workers, options.repeats, options.sample_seconds)
    labels = {
        "route_bare": "bare: p = c[k]; c[k] = w; c[k] = p",
        "route_alias": "with r, r = route_connections(default='other')",
        "route_wrapper": "with r, r = route_connections(default=<shared wrapper>)",
        "route_alias_new": "with route_connections(default='other') (made each time)",
    }
    result = {"title": "route_connections enter + exit (ns per block)", "unit": "ns", "rows": []}
    for variant, where in (("dj13shim", "Py2.7 Dj1.3.7+shim"), ("dj61", "Py3.13 Dj6.1+shim")):
        for case in cases:
            key = variant + "-" + case
            vs = None if case == "route_bare" else variant + "-route_bare"
            result["rows"].append(row(stats, key, "%s: %s" % (where, labels[case]), vs=vs))
    result["rows"].append(row(
        stats, "dj61-getitem_after_routing",
        'Py3.13 Dj6.1: connections["default"] once routing is enabled',
        vs=None, also=("dj61-getitem", figure_value(options, 1, "dj61")),
    ))
    return result


def figure_value(options, figure, key):
    """A row's minimum from an earlier figure of this run (None if it did not run)."""
    for row_ in options.done.get(figure, {}).get("rows", ()):
        if row_["key"] == key:
            return row_["min"]
    return None


def row(stats, key, label, vs=None, target=None, aim=None, also=None):
    """One table row; ``vs`` the key of the reference row in ``stats`` (ratio of minima)."""
    value = stats[key]
    result = {"key": key, "label": label, "min": value["min"], "median": value["median"],
              "samples": value["samples"]}
    if vs is not None:
        result["vs"] = vs
        result["ratio"] = value["min"] / stats[vs]["min"]
        result["ratio_median"] = value["median"] / stats[vs]["median"]
        result["target"] = target
        result["aim"] = aim
        if target is not None:
            result["meets_target"] = result["ratio"] <= target
    if also is not None:
        other_key, other_value = also
        reference = stats[other_key]["min"] if other_key in stats else other_value
        if reference:
            result["also_vs"] = other_key
            result["also_ratio"] = value["min"] / reference
    return result


# -- figure 5: gunicorn ---------------------------------------------------------------------------

def free_port():
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
    finally:
        probe.close()


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

# figure -> [(row key, variant, case, rounds)]; an op costs (Ir(2N) - Ir(N)) / (N * unroll).
CALLGRIND_ROWS = {
    1: [("dj13", "dj13", "getitem", 5000), ("dj13shim", "dj13shim", "getitem", 5000),
        ("dj14", "dj14", "getitem", 5000), ("dj61", "dj61", "getitem", 5000)],
    2: [("dj13-ops", "dj13", "attr_ops_module", 5000),
        ("dj13shim-module-ops", "dj13shim", "attr_ops_module", 5000),
        ("dj13shim-legacy-ops", "dj13shim", "attr_ops_legacy", 5000),
        ("dj14-ops", "dj14", "attr_ops_module", 5000)],
    3: [("dj13-orm_get", "dj13", "orm_get", 500), ("dj13shim-orm_get", "dj13shim", "orm_get", 500),
        ("dj13-orm_count", "dj13", "orm_count", 500),
        ("dj13shim-orm_count", "dj13shim", "orm_count", 500)],
    4: [("dj13shim-route_bare", "dj13shim", "route_bare", 1000),
        ("dj13shim-route_alias", "dj13shim", "route_alias", 1000),
        ("dj13shim-route_wrapper", "dj13shim", "route_wrapper", 1000),
        ("dj61-route_bare", "dj61", "route_bare", 1000),
        ("dj61-route_alias", "dj61", "route_alias", 1000),
        ("dj61-route_wrapper", "dj61", "route_wrapper", 1000),
        ("dj61-getitem_after_routing", "dj61", "getitem_after_routing", 5000)],
    5: [("dj13", "dj13", "request", 20), ("dj13shim", "dj13shim", "request", 20),
        ("dj14", "dj14", "request", 20)],
}
UNROLL = {"getitem": 20, "getitem_after_routing": 20, "attr_ops_module": 20, "attr_ops_legacy": 20, "route_bare": 10,
          "route_alias": 10, "route_wrapper": 10}


def callgrind_instructions(pythons, variant, case, rounds, pg_port=None):
    env_name, shim, _ = VARIANTS[variant]
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               pythons[env_name], os.path.join(HERE, "worker.py"),
               "--db", "postgres" if pg_port else "sqlite", "--count", case,
               "--rounds", str(rounds)]
    if pg_port:
        command[command.index("--db") + 2:command.index("--db") + 2] = ["--pg-port", str(pg_port)]
    if shim:
        command.append("--shim")
    completed = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0"),
    )
    for line in completed.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1])
    raise SystemExit("bench: callgrind failed for %s %s:\n%s"
                     % (variant, case, completed.stderr[-3000:]))


def callgrind_figure(number, pythons, report, pg_port=None):
    """Instructions per op for the rows of ``number``, two runs of each (N and 2N rounds),
    two runs at a time; written into the figure's rows as "instructions"."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = []
    for key, variant, case, rounds in CALLGRIND_ROWS[number]:
        jobs += [(key, variant, case, rounds), (key, variant, case, 2 * rounds)]
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(
            lambda job: callgrind_instructions(pythons, job[1], job[2], job[3], pg_port), jobs))
    per_op = {}
    for index in range(0, len(jobs), 2):
        key, _, case, rounds = jobs[index]
        per_op[key] = (counts[index + 1] - counts[index]) / float(rounds * UNROLL.get(case, 1))
    figure = report["figures"].get(str(number))
    if figure is None:
        return
    if number == 4:  # connections[alias] on Django 6.1 before routing: figure 1's row
        for item in report["figures"].get("1", {}).get("rows", ()):
            if item["key"] == "dj61" and "instructions" in item:
                per_op["dj61-getitem"] = item["instructions"]
    for item in figure["rows"]:
        if item["key"] in per_op:
            item["instructions"] = per_op[item["key"]]
            reference = per_op.get(item.get("vs") or item.get("also_vs"))
            if reference:
                item["instructions_ratio"] = per_op[item["key"]] / reference
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
    out.write("   %-78s %9s %9s  %s\n" % ("", "min", "median", "ratio (target)"))
    for item in figure["rows"]:
        ratio = ""
        if "ratio" in item:
            ratio = "%.2fx %s" % (item["ratio"], item["vs"])
            if item.get("target") is not None:
                ratio += " (%s %.2f: %s)" % (
                    ">=" if figure.get("higher_is_better") else "<=", item["target"],
                    "ok" if item["meets_target"] else "MISSED")
            if item.get("aim") is not None:
                ratio += " [aim %.2f]" % item["aim"]
        if "also_ratio" in item:
            ratio += "; %.2fx %s" % (item["also_ratio"], item["also_vs"])
        if "instructions" in item:
            ratio += "; %.0f instr" % item["instructions"]
            if "instructions_ratio" in item:
                ratio += " (%.2fx)" % item["instructions_ratio"]
        if "server_cpu_us_min" in item:
            ratio += "; server CPU %.0f us/req" % item["server_cpu_us_min"]
            if item.get("server_cpu_ratio"):
                ratio += " (%.2fx)" % item["server_cpu_ratio"]
        if item.get("errors"):
            ratio += "; %d errors" % item["errors"]
        best = item["max"] if figure.get("higher_is_better") else item["min"]
        out.write("   %-78s %9s %9s  %s\n" % (
            item["label"][:78], format_value(best, unit), format_value(item["median"], unit),
            ratio))
    if figure.get("note"):
        out.write("   %s\n" % figure["note"])
    if figure.get("higher_is_better"):
        out.write("   (first column: best round; ratios: best rounds, medians in the JSON; server CPU:\n"
                  "   the gunicorn processes' user+system time per request, min over rounds)\n")


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
    figures = sorted(int(part) for part in options.figures.split(",") if part)

    pythons = envs.ensure_all()
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
            for variant in VARIANTS:
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


if __name__ == "__main__":
    main()
