"""``python -m compat_matrix``: run the probe in every env of the tox matrix and render the
table.

For each ``pyXY-djangoNN`` env of ``tox -l`` (or those picked with ``-e``/``--django``), in
parallel (``-j``, by default one per CPU): build the env with ``tox -e ENV --notest`` (creating
it if needed, installing one sdist of the checkout built at the start), run
``compat_matrix/probe.py`` with the env's Python, and store its record in
``compat_matrix/results/ENV.json``. Then write the table for the terminal,
``compat_matrix/MATRIX.rst`` and ``compat_matrix/matrix.html`` from every stored record, and
mirror the table and the connlocal_status outputs into README.rst. An env that cannot be built
is recorded as "not run" with the reason. Exits 1 if any env failed or was not run.
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

from compat_matrix import render
from compat_matrix.columns import FAILED

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
ENV_NAME = re.compile(r"^py\d+-django\d+$")  # the matrix; not the *-suite envs
BUILD_TIMEOUT = 1800
PROBE_TIMEOUT = 600


class Progress(object):
    """One line per event, with how many envs are done and left."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.started = time.time()

    def say(self, env, message, finished=False):
        with self.lock:
            if finished:
                self.done += 1
            elapsed = time.time() - self.started
            print("[%s %2d/%d done, %d left] %-16s %s" % (
                clock(elapsed), self.done, self.total, self.total - self.done, env, message))
            sys.stdout.flush()


def clock(seconds):
    return "%d:%02d" % divmod(int(seconds), 60)


# -- tools ----------------------------------------------------------------------------------------

def run(command, timeout, env=None, cwd=ROOT, log=None):
    """Run ``command``; return (exit code or None on timeout, output)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, cwd=cwd)
    try:
        output = process.communicate(timeout=timeout)[0]
        code = process.returncode
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
        code = None
    text = output.decode("utf-8", "replace")
    if log:
        with io.open(log, "w", encoding="utf-8") as handle:
            handle.write("$ %s\n%s" % (" ".join(command), text))
    return code, text


def tool_environment():
    """os.environ for tox and the probes: what tox.ini says decides the envs, and pyenv's
    pythonX.Y shims must resolve every installed interpreter (as .ci/run arranges)."""
    env = dict(os.environ)
    for name in ("TOXENV", "TOX_SKIP_ENV", "PYTHONPATH", "DJANGO_SETTINGS_MODULE",
                 "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["TOX_PARALLEL_NO_SPINNER"] = "1"
    # Seed new envs with the pip, setuptools and wheel virtualenv embeds for each Python, never
    # with newer ones its periodic update fetched into its app-data: those need not support the
    # env's Python (pip 26 there broke every new Python 3.7 env).
    env["VIRTUALENV_NO_PERIODIC_UPDATE"] = "1"
    for seed in ("PIP", "SETUPTOOLS", "WHEEL"):
        env["VIRTUALENV_" + seed] = "embed"
    pyenv = shutil.which("pyenv", path=env.get("PATH"))
    if pyenv:
        # Run through a pyenv shim, this process has PYENV_VERSION set to its own version only.
        code, output = run([pyenv, "versions", "--bare"], 60, env=env)
        installed = [line.strip() for line in output.splitlines()
                     if line.strip() and "/" not in line]
        selected = [v for v in env.get("PYENV_VERSION", "").split(":") if v]
        if code == 0 and installed:
            env["PYENV_VERSION"] = ":".join(selected + [v for v in installed
                                                         if v not in selected])
    return env


def find_tox(env, explicit=None):
    """tox<4 and virtualenv<20.22 in .ci/.venv, as CI has them (created if missing)."""
    if explicit:
        return explicit
    tools = os.path.join(ROOT, ".ci", ".venv")
    tox = os.path.join(tools, "bin", "tox")
    if not os.path.exists(tox):
        python = shutil.which("python3.11", path=env.get("PATH")) or sys.executable
        print("compat_matrix: creating the tools venv %s (tox<4, virtualenv<20.22) with %s"
              % (os.path.relpath(tools, ROOT), python))
        for command in ([python, "-m", "venv", tools],
                        [os.path.join(tools, "bin", "python"), "-m", "pip", "install", "-q",
                         "-r", os.path.join(ROOT, "requirements", "tox.txt")]):
            code, output = run(command, BUILD_TIMEOUT, env=env)
            if code != 0:
                raise SystemExit("compat_matrix: %s failed:\n%s" % (" ".join(command), output))
    return tox


def matrix_envs(tox, env):
    code, output = run([tox, "-l"], 120, env=env)
    if code != 0:
        raise SystemExit("compat_matrix: tox -l failed:\n%s" % output)
    return [line.strip() for line in output.splitlines() if ENV_NAME.match(line.strip())]


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


def build_failure(output, code):
    missing = re.search(r"InterpreterNotFound: (\S+)", output)
    if missing:
        return "interpreter %s not found (tox: InterpreterNotFound)" % missing.group(1)
    if code is None:
        return "tox --notest did not finish in %ss" % BUILD_TIMEOUT
    errors = [line.strip() for line in output.splitlines() if "ERROR" in line]
    last = errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1]
    return "tox --notest failed (exit %s): %s" % (code, last.strip()[:300])


def run_env(env_name, context):
    progress = context["progress"]
    started = time.time()
    logs = context["logs"]
    progress.say(env_name, "building env (tox -e %s --notest)" % env_name)
    command = [context["tox"], "-e", env_name, "--notest", "--installpkg", context["sdist"]]
    if context["workdir"]:
        command[1:1] = ["--workdir", context["workdir"]]
    code, output = run(command, BUILD_TIMEOUT, env=context["env"],
                       log=os.path.join(logs, env_name + "-build.log"))
    build_seconds = round(time.time() - started, 1)
    if code != 0:
        reason = build_failure(output, code)
        progress.say(env_name, "NOT RUN: %s" % reason, finished=True)
        return not_run(env_name, reason, started)
    python = os.path.join(context["toxworkdir"], env_name, "bin", "python")
    progress.say(env_name, "probing (env built in %ss)" % build_seconds)
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

def save(record):
    if not os.path.isdir(RESULTS):
        os.makedirs(RESULTS)
    path = os.path.join(RESULTS, record["env"] + ".json")
    with io.open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(record, indent=2, sort_keys=True) + "\n")


def load(envs):
    """(env, record) for every env of the matrix, in its order; an env without a record is
    "not run"."""
    records = []
    for env_name in envs:
        path = os.path.join(RESULTS, env_name + ".json")
        if os.path.exists(path):
            with io.open(path, encoding="utf-8") as handle:
                records.append((env_name, json.load(handle)))
        else:
            records.append((env_name, {"env": env_name, "status": render.NOT_RUN,
                                       "reason": "no record: python -m compat_matrix -e %s"
                                                 % env_name}))
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
        prog="python -m compat_matrix",
        description="Probe connlocal_shim in every env of the tox matrix and render the "
        "compatibility matrix (terminal, compat_matrix/MATRIX.rst, compat_matrix/matrix.html, "
        "README.rst).",
    )
    parser.add_argument("-e", "--env", action="append", metavar="ENV[,ENV]",
                        help="only these envs (e.g. py27-django13); the others keep their rows")
    parser.add_argument("--django", action="append", metavar="X.Y[,X.Y]",
                        help="only the envs of these Django releases (e.g. 1.3,4.2)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                        help="envs at a time (default: one per CPU, here %(default)s)")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing: render the stored records")
    parser.add_argument("--tox", help="the tox (<4) to use (default: .ci/.venv/bin/tox, "
                        "created like CI's if missing)")
    parser.add_argument("--workdir", help="tox's work directory (default: tox.ini's, .tox)")
    parser.add_argument("--no-color", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    options = parse(argv)
    started = time.time()
    env = tool_environment()
    tox = find_tox(env, options.tox)
    envs = matrix_envs(tox, env)
    chosen = select(envs, split(options.env), split(options.django))
    ran = []
    if not options.render_only:
        ran = run_all(chosen, options, tox, env)
    records = load(envs)
    print()
    print(render.terminal_table(records, color=sys.stdout.isatty() and not options.no_color))
    for path in render.write_outputs(HERE, records):
        print("compat_matrix: wrote %s" % os.path.relpath(path, ROOT))
    readme = os.path.join(ROOT, "README.rst")
    if os.path.exists(readme):
        unfilled = render.mirror_into(readme, records)
        print("compat_matrix: updated README.rst%s" % (
            " (could not fill: %s)" % "; ".join(unfilled) if unfilled else ""))
    if options.render_only:
        return 0
    failed = [record["env"] for record in ran if record["status"] == FAILED]
    skipped = [record["env"] for record in ran if record["status"] == render.NOT_RUN]
    print("compat_matrix: %d envs in %s: %d passed, %d failed%s, %d not run%s" % (
        len(ran), clock(time.time() - started), len(ran) - len(failed) - len(skipped),
        len(failed), " (%s)" % ", ".join(failed) if failed else "", len(skipped),
        " (%s)" % ", ".join(skipped) if skipped else ""))
    return 1 if failed or skipped else 0


def run_all(chosen, options, tox, env):
    scratch = tempfile.mkdtemp(prefix="connlocal-shim-sdist-")
    try:
        sdist = build_sdist(tox, env, scratch)
        toxworkdir = os.path.abspath(options.workdir or os.path.join(ROOT, ".tox"))
        logs = os.path.join(toxworkdir, "compat-matrix")
        if not os.path.isdir(logs):
            os.makedirs(logs)
        jobs = max(1, min(options.jobs, len(chosen) or 1))
        code, version = run([tox, "--version"], 60, env=env)
        context = {
            "tox": tox, "env": env, "sdist": sdist, "workdir": options.workdir,
            "toxworkdir": toxworkdir, "logs": logs, "commit": checkout_commit(),
            "sdist_digest": package_digest(sdist_files(sdist)),
            "progress": Progress(len(chosen)),
        }
        print("compat_matrix: %d env(s), %d at a time: %s" % (len(chosen), jobs,
                                                               ", ".join(chosen)))
        print("compat_matrix: connlocal-shim %s at %s; tox %s; logs in %s" % (
            os.path.basename(sdist)[len("connlocal-shim-"):-len(".zip")], context["commit"],
            version.split()[0] if code == 0 else "?", os.path.relpath(logs, ROOT)))
        records = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_env, name, context) for name in chosen]
            for future in concurrent.futures.as_completed(futures):
                record = future.result()
                save(record)  # now: an interrupted run keeps the rows it finished
                records.append(record)
        return records
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
