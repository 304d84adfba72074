"""``python3 -m compat_matrix``: run the probe in every env of the tox matrix and render the
table.

For each ``pyXY-djangoNN`` env of tox.ini's envlist (or those picked with ``-e``/``--django``),
in parallel (``-j``, by default one per CPU): build the env with ``tox -e ENV --notest``
(creating it if needed, installing one sdist of the checkout built at the start), run
``compat_matrix/probe.py`` with the env's Python, and keep its record. Then write the table for
the terminal, ``MATRIX.rst`` and ``matrix.html``: each row from this run's record of the env, or
from the record stored in ``compat_matrix/results/`` (marked so, with its commit and date).

By default everything it writes goes under ``build/compat_matrix/`` (git-ignored): a run leaves
``git status`` clean. ``--update`` writes the committed files instead: this run's records into
``compat_matrix/results/``, ``compat_matrix/MATRIX.rst``, ``compat_matrix/matrix.html`` and the
blocks of ``docs/matrix.rst`` and ``docs/diagnostics.rst`` between ``.. BEGIN compat_matrix``
and ``.. END compat_matrix`` markers. An env that cannot be built is recorded as "not run" with
the reason. Exits 1 if any env failed or was not run.

The interpreters and tox come from tools.py (a missing interpreter or system package stops it
before anything is built); a NOT RUN line gives the build log's last error line and its path. It prints a line from its first second on, and while envs build.
"""
import argparse
import concurrent.futures
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

from compat_matrix import render, tools
from compat_matrix.columns import FAILED

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")  # the stored records, committed
DEFAULT_OUTPUT = os.path.join(ROOT, "build", "compat_matrix")
# The committed pages whose marked blocks --update rewrites (the table, connlocal_status output).
DOCS_PAGES = (os.path.join(ROOT, "docs", "matrix.rst"), os.path.join(ROOT, "docs", "diagnostics.rst"))
BUILD_TIMEOUT = 1800
PROBE_TIMEOUT = 600
QUIET_SECONDS = 20  # a busy env says what it is doing after this long without a line
# tox's lines worth echoing while an env builds: "py27-django13 installdeps: Django>=1.3,<1.4".
TOX_STEP = re.compile(r"^\S+ (create|installdeps|inst|inst-nodeps|develop-inst): ")


class Progress(object):
    """One line per event, with how many envs are done and left; and, while envs are busy
    without a word, a line every QUIET_SECONDS saying what each is doing and since when."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.started = time.time()
        self.busy = {}  # env -> [what, since, last line printed at]
        self.stopped = threading.Event()
        self.ticker = threading.Thread(target=self.tick)
        self.ticker.daemon = True
        self.ticker.start()

    def say(self, env, message, finished=False, phase=None):
        with self.lock:
            now = time.time()
            if finished:
                self.done += 1
                self.busy.pop(env, None)
            elif phase is not None:
                self.busy[env] = [phase, now, now]
            elif env in self.busy:
                self.busy[env][2] = now
            print("[%s %2d/%d done, %d left] %-16s %s" % (
                clock(now - self.started), self.done, self.total, self.total - self.done, env,
                message))
            sys.stdout.flush()

    def tick(self):
        while not self.stopped.wait(QUIET_SECONDS / 4.0):
            with self.lock:
                now = time.time()
                quiet = [(env, state) for env, state in sorted(self.busy.items())
                         if now - state[2] >= QUIET_SECONDS]
                if not quiet:
                    continue
                for env, state in quiet:
                    state[2] = now
                print("[%s %2d/%d done, %d left] still %s" % (
                    clock(now - self.started), self.done, self.total, self.total - self.done,
                    "; ".join("%s %s (%s)" % (env, state[0], clock(now - state[1]))
                              for env, state in quiet)))
                sys.stdout.flush()

    def stop(self):
        self.stopped.set()
        self.ticker.join()


def clock(seconds):
    return "%d:%02d" % divmod(int(seconds), 60)


# -- tools ----------------------------------------------------------------------------------------

def run(command, timeout, env=None, cwd=ROOT, log=None, on_line=None):
    """Run ``command``; return (exit code or None on timeout, output). ``on_line`` is called
    with each line of output as it comes."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, cwd=cwd)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    lines = []
    try:
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))
        process.wait()
    finally:
        timed_out = not timer.is_alive()
        timer.cancel()
        process.stdout.close()
    code = None if timed_out and process.returncode != 0 else process.returncode
    text = "".join(lines)
    if log:
        with io.open(log, "w", encoding="utf-8") as handle:
            handle.write("$ %s\n%s" % (" ".join(command), text))
    return code, text


def matrix_envs():
    """The main job's envs: one per Django release (``pyXY-djangoNN``) of tox.ini's envlist."""
    return [env for env in tools.tox_envs(ROOT)[0] if tools.MATRIX_ENV.match(env)]


def git(*args):
    try:
        output = subprocess.check_output(("git",) + args, cwd=ROOT, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError):
        return None
    return output.decode("utf-8", "replace").strip()


def checkout_commit():
    """The commit the sdist is built from, '+changes' if connlocal_shim/ or setup.py differ."""
    commit = git("rev-parse", "--short", "HEAD")
    if commit is None:
        return "unknown (no git checkout)"
    if git("status", "--porcelain", "--", "connlocal_shim", "setup.py"):
        commit += "+changes"
    return commit


def build_sdist(tox, env, directory):
    """One sdist of the checkout for every env (tox 3 runs setup.py sdist the same way)."""
    python = os.path.join(os.path.dirname(tox), "python")
    code, output = run([python, "setup.py", "-q", "sdist", "--formats=zip", "--dist-dir",
                        directory], 600, env=env)
    archives = [name for name in os.listdir(directory) if name.endswith(".zip")]
    if code != 0 or len(archives) != 1:
        raise SystemExit("compat_matrix: building the sdist failed:\n%s" % output)
    return os.path.join(directory, archives[0])


def package_digest(files):
    """One digest of {path inside connlocal_shim: sha256}."""
    text = "\n".join("%s %s" % item for item in sorted(files.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sdist_files(archive):
    """{path inside connlocal_shim: sha256} of the .py files the sdist ships."""
    files = {}
    with zipfile.ZipFile(archive) as bundle:
        for name in bundle.namelist():
            parts = name.split("/")
            if len(parts) > 2 and parts[1] == "connlocal_shim" and name.endswith(".py"):
                files["/".join(parts[2:])] = hashlib.sha256(bundle.read(name)).hexdigest()
    return files


# -- one env --------------------------------------------------------------------------------------

def not_run(env_name, reason, started):
    return {
        "env": env_name,
        "status": render.NOT_RUN,
        "reason": reason,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)),
    }


# The line that says what went wrong in a failed build, for the NOT RUN line: an exception's
# ("EnvironmentError: mysql_config not found", "Exception: Can not find valid pkg-config name."),
# not the pip command of tox's closing "ERROR: could not install deps [...]; v =
# InvocationError('... -m pip install ...', 1)", which says only that pip failed, cut mid-word.
EXCEPTION_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*)?(?:Error|Exception)(?:\s*\[[^\]]*\])?:\s*\S")
# pip's and tox's own lines about a failure, which never name its cause.
WRAPPER_LINE = re.compile(r"InvocationError|could not install deps|invocation failed|"
                          r"Command errored out|subprocess-exited-with-error|"
                          r"Failed (building|to build)|Could not build wheels|"
                          r"ERROR: +\S+: commands failed", re.I)
REASON_WIDTH = 300


def last_error_line(output):
    """The build output's line that names the cause of the failure: its last exception line,
    else its last error line that is not pip's or tox's wrapping, else its last error line, else
    its last line; shortened to REASON_WIDTH at a word boundary."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    exceptions = [line for line in lines if EXCEPTION_LINE.match(line)
                  and not WRAPPER_LINE.search(line)]
    errors = [line for line in lines if re.match(r"^(ERROR|error)\b", line)]
    causes = [line for line in errors if not WRAPPER_LINE.search(line)]
    for found in (exceptions, causes, errors, lines):
        if found:
            return shorten_words(found[-1], REASON_WIDTH)
    return "no output"


def shorten_words(text, width):
    """``text``, or its words that fit in ``width`` with " ..." after them."""
    if len(text) <= width:
        return text
    cut = text[:width - 4].rsplit(" ", 1)[0]
    return cut + " ..."


def shown_path(path):
    """``path`` relative to the checkout where it is inside it, else absolute."""
    relative = os.path.relpath(path, ROOT)
    return os.path.abspath(path) if relative.startswith(os.pardir) else relative


def build_failure(output, code, log):
    """The NOT RUN reason of an env tox could not build: the build log's last error line and
    the log's path."""
    where = shown_path(log) if log else "no log"
    missing = re.search(r"InterpreterNotFound: (\S+)", output)
    if missing:
        return "interpreter %s not found (tox: InterpreterNotFound; build log %s)" % (
            missing.group(1), where)
    if code is None:
        return "tox --notest did not finish in %ss (build log %s)" % (BUILD_TIMEOUT, where)
    return "tox --notest failed (exit %s): %s (build log %s)" % (
        code, last_error_line(output), where)


def run_env(env_name, context):
    progress = context["progress"]
    started = time.time()
    logs = context["logs"]
    progress.say(env_name, "building env (tox -e %s --notest)" % env_name, phase="building")

    def echo(line):
        if TOX_STEP.match(line):
            progress.say(env_name, "tox: %s" % shorten(line.split(" ", 1)[1], 90))

    command = [context["tox"], "-e", env_name, "--notest", "--installpkg", context["sdist"]]
    if context["workdir"]:
        command[1:1] = ["--workdir", context["workdir"]]
    build_log = os.path.join(logs, env_name + "-build.log")
    code, output = run(command, BUILD_TIMEOUT, env=context["env"], log=build_log, on_line=echo)
    build_seconds = round(time.time() - started, 1)
    if code != 0:
        reason = build_failure(output, code, build_log)
        progress.say(env_name, "NOT RUN: %s" % reason, finished=True)
        return not_run(env_name, reason, started)
    python = os.path.join(context["toxworkdir"], env_name, "bin", "python")
    progress.say(env_name, "probing (env built in %ss)" % build_seconds, phase="probing")
    probe_started = time.time()
    record_path = os.path.join(logs, env_name + ".json")
    if os.path.exists(record_path):
        os.remove(record_path)
    scratch = tempfile.mkdtemp(prefix="connlocal-shim-matrix-")
    try:
        # cwd: a scratch directory, so that nothing but the env decides what is imported.
        code, output = run([python, os.path.join(HERE, "probe.py"), "--output", record_path],
                           PROBE_TIMEOUT, env=context["env"], cwd=scratch,
                           log=os.path.join(logs, env_name + "-probe.log"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = {}
    if os.path.exists(record_path):
        with io.open(record_path, encoding="utf-8") as handle:
            record = json.load(handle)
    if not record:
        record = {"probe_error": "the probe wrote no record (exit %s): %s" % (
            code, output.strip()[-2000:] or "no output")}
    record.update(env=env_name, commit=context["commit"], build_seconds=build_seconds,
                  run_seconds=round(time.time() - probe_started, 1))
    finish_record(record, context, code)
    progress.say(env_name, record["summary"], finished=True)
    return record


def shorten(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def finish_record(record, context, code):
    """Add what the runner checks: the probe ran the package built from the checkout, from
    the env; the record's status and summary line."""
    problems = []
    files = record.pop("connlocal_shim_files", None)
    path = record.get("connlocal_shim_path")
    if path:
        envdir = os.path.join(context["toxworkdir"], record["env"])
        if not os.path.abspath(path).startswith(os.path.abspath(envdir) + os.sep):
            problems.append("the probe imported connlocal_shim from %s, not from the env" % path)
        record["connlocal_shim_path"] = os.path.relpath(path, ROOT)
    if record.get("executable"):
        record["executable"] = os.path.relpath(record["executable"], ROOT)
    if files is not None:
        record["package_digest"] = package_digest(files)
        if record["package_digest"] != context["sdist_digest"]:
            problems.append("the env's connlocal_shim is not the sdist built from the checkout")
    record["problems"] = problems
    features = record.get("features") or {}
    failed = [key for key, value in features.items() if value["result"] == FAILED]
    diagnostics = record.get("diagnostics") or {}
    if diagnostics.get("result") == FAILED:
        failed.append("diagnostics")
    if record.get("probe_error") or failed or problems or code not in (0, 1):
        record["status"] = FAILED
    elif code != 0:  # the probe says it failed but the record shows no failed check
        record["status"] = FAILED
        problems.append("the probe exited %s" % code)
    else:
        record["status"] = "passed"
    if record.get("probe_error"):
        summary = "FAILED: the probe broke: %s" % record["probe_error"].strip().splitlines()[-1]
    else:
        checked = [v for v in features.values() if v["result"] != "not applicable"]
        summary = "%s: %d/%d feature checks passed, connlocal_status %s (Python %s, Django %s," \
            " probe %ss)" % (
                "passed" if record["status"] == "passed" else "FAILED",
                len([v for v in checked if v["result"] == "passed"]), len(checked),
                "works" if diagnostics.get("result") == "passed" else "FAILED",
                record.get("python"), record.get("django"), record.get("run_seconds"))
        if failed or problems:
            summary += "; failed: %s" % ", ".join(failed + problems)
    record["summary"] = summary


# -- the records ----------------------------------------------------------------------------------

def save(record, directory):
    if not os.path.isdir(directory):
        os.makedirs(directory)
    path = os.path.join(directory, record["env"] + ".json")
    with io.open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(record, indent=2, sort_keys=True) + "\n")


def load(envs, fresh=None, results=RESULTS):
    """(env, record) for every env of the matrix, in its order: this run's record (``fresh``:
    {env: record}) or the one stored in ``results``; an env with neither is "not run"."""
    fresh = fresh or {}
    records = []
    for env_name in envs:
        path = os.path.join(results, env_name + ".json")
        if env_name in fresh:
            records.append((env_name, fresh[env_name]))
        elif os.path.exists(path):
            with io.open(path, encoding="utf-8") as handle:
                records.append((env_name, json.load(handle)))
        else:
            records.append((env_name, {"env": env_name, "status": render.NOT_RUN,
                                       "reason": "no record: python3 -m compat_matrix -e %s "
                                                 "--update" % env_name}))
    return records


def select(envs, names, djangos):
    if not names and not djangos:
        return list(envs)
    chosen = []
    unknown = []
    for name in names:
        if name in envs:
            chosen.append(name)
        else:
            unknown.append(name)
    for release in djangos:
        matching = [env for env in envs if render.django_release(env) == release]
        if matching:
            chosen.extend(matching)
        else:
            unknown.append("Django %s" % release)
    if unknown:
        raise SystemExit("compat_matrix: not in the matrix: %s (envs: %s)"
                         % (", ".join(unknown), ", ".join(envs)))
    return [env for env in envs if env in chosen]


def split(values):
    return [part for value in values or () for part in value.split(",") if part]


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="python3 -m compat_matrix",
        description="Probe connlocal_shim in every env of the tox matrix and render the "
        "compatibility matrix (the terminal; MATRIX.rst and matrix.html under build/compat_matrix/,"
        " or with --update the committed ones and the docs pages). With --tests instead: the "
        "test command (python3 -m compat_matrix --tests --help).",
    )
    parser.add_argument("-e", "--env", action="append", metavar="ENV[,ENV]",
                        help="only these envs (e.g. py27-django13); the others' rows come from "
                        "the stored records")
    parser.add_argument("--django", action="append", metavar="X.Y[,X.Y]",
                        help="only the envs of these Django releases (e.g. 1.3,4.2)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                        help="envs at a time (default: one per CPU, here %(default)s)")
    parser.add_argument("--update", action="store_true",
                        help="write the committed outputs: this run's records into "
                        "compat_matrix/results/, compat_matrix/MATRIX.rst and matrix.html, and "
                        "the blocks of docs/matrix.rst and docs/diagnostics.rst")
    parser.add_argument("--output", metavar="DIR",
                        help="where a run without --update writes (default: build/compat_matrix)")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: render the stored records")
    parser.add_argument("--tox", help="the tox (<4) to use (default: .ci/.venv/bin/tox, "
                        "made if missing)")
    parser.add_argument("--workdir", help="tox's work directory (default: tox.ini's, .tox)")
    parser.add_argument("--no-color", action="store_true")
    options = parser.parse_args(argv)
    if options.jobs < 1:
        parser.error("-j must be 1 or more")
    if options.update and options.output:
        parser.error("--output is where a run without --update writes; --update writes the "
                     "committed files")
    return options


def say(message):
    print("compat_matrix: %s" % message)
    sys.stdout.flush()


def main(argv=None):
    options = parse(argv)
    started = time.time()
    envs = matrix_envs()
    chosen = select(envs, split(options.env), split(options.django))
    output = HERE if options.update else os.path.abspath(options.output or DEFAULT_OUTPUT)
    results = RESULTS if options.update else os.path.join(output, "results")
    fresh = {}
    if not options.render_only:
        say("%d env(s) to probe: %s; writing to %s" % (
            len(chosen), " ".join(chosen), "the committed files (--update)" if options.update
            else os.path.relpath(output, ROOT)))
        try:
            tox, env = tools.prepare(chosen, say, root=ROOT)
        except tools.ToolError as error:
            sys.stderr.write("compat_matrix: %s\n" % error)
            return 2
        if options.tox:
            tox = options.tox
        if not options.update:
            shutil.rmtree(results, ignore_errors=True)  # this run's records only
        for record in run_all(chosen, options, tox, env, results):
            fresh[record["env"]] = record
    records = load(envs, fresh)
    print()
    print(render.terminal_table(records, fresh=set(fresh),
                                color=sys.stdout.isatty() and not options.no_color))
    for path in render.write_outputs(output, records, fresh=None if options.update else set(fresh)):
        say("wrote %s" % os.path.relpath(path, ROOT))
    if options.update:
        for page in DOCS_PAGES:
            unfilled = render.mirror_into(page, records)
            say("updated %s%s" % (os.path.relpath(page, ROOT), " (could not fill: %s)" % (
                "; ".join(unfilled)) if unfilled else ""))
    else:
        say("the committed matrix is unchanged (--update writes it)")
    if options.render_only:
        return 0
    ran = list(fresh.values())
    failed = sorted(record["env"] for record in ran if record["status"] == FAILED)
    skipped = sorted(record["env"] for record in ran if record["status"] == render.NOT_RUN)
    say("%d envs in %s: %d passed, %d failed%s, %d not run%s" % (
        len(ran), clock(time.time() - started), len(ran) - len(failed) - len(skipped),
        len(failed), " (%s)" % ", ".join(failed) if failed else "", len(skipped),
        " (%s)" % ", ".join(skipped) if skipped else ""))
    return 1 if failed or skipped else 0


def run_all(chosen, options, tox, env, results):
    scratch = tempfile.mkdtemp(prefix="connlocal-shim-sdist-")
    progress = None
    try:
        say("building the sdist of the checkout")
        sdist = build_sdist(tox, env, scratch)
        toxworkdir = os.path.abspath(options.workdir or os.path.join(ROOT, ".tox"))
        logs = os.path.join(toxworkdir, "compat-matrix")
        if not os.path.isdir(logs):
            os.makedirs(logs)
        jobs = max(1, min(options.jobs, len(chosen) or 1))
        code, version = run([tox, "--version"], 60, env=env)
        progress = Progress(len(chosen))
        context = {
            "tox": tox, "env": env, "sdist": sdist, "workdir": options.workdir,
            "toxworkdir": toxworkdir, "logs": logs, "commit": checkout_commit(),
            "sdist_digest": package_digest(sdist_files(sdist)),
            "progress": progress,
        }
        say("%d env(s), %d at a time; connlocal-shim %s at %s; tox %s; logs in %s" % (
            len(chosen), jobs, os.path.basename(sdist)[len("connlocal-shim-"):-len(".zip")],
            context["commit"], version.split()[0] if code == 0 else "?",
            os.path.relpath(logs, ROOT)))
        records = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_env, name, context) for name in chosen]
            for future in concurrent.futures.as_completed(futures):
                record = future.result()
                save(record, results)  # now: an interrupted run keeps the rows it finished
                records.append(record)
        return records
    finally:
        if progress is not None:
            progress.stop()
        shutil.rmtree(scratch, ignore_errors=True)
