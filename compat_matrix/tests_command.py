"""``python3 -m compat_matrix --tests``: the project's test command, in one line from a fresh
clone with nothing exported first.

    python3 -m compat_matrix --tests                        # every env of tox.ini's envlist
    python3 -m compat_matrix --tests -e py27-django13       # one env (or -e A,B; -e repeats)
    python3 -m compat_matrix --tests -e py313-django61 -- tests/test_routing.py -x
    python3 -m compat_matrix --tests --list                 # the envs, one per line

It finds an interpreter for every env it is to run (tools.py: pyenv's versions or PATH, never
through PYENV_VERSION) and the system packages the envs build against, and stops naming each
missing one, with how to get it, before anything is built (a missing test-time server is said,
and stops it only where its CONNLOCAL_SHIM_REQUIRE_* variable is 1); then makes its tools venv
(.ci/.venv: tox<4 and virtualenv<20.22) if needed and runs tox with them: ``tox -e ENVS [-p N]
[-- PYTEST ARGS]``. Exits with tox's exit code.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import time

from compat_matrix import tools

REPORTS = os.path.join(tools.ROOT, ".ci", "reports")  # tox.ini's --junitxml {envname}.xml
SUMMARIZE = os.path.join(tools.ROOT, ".ci", "summarize.py")  # CI's reader of those reports


def say(message):
    print("compat_matrix --tests: %s" % message)
    sys.stdout.flush()


def parse(argv):
    if "--" in argv:
        index = argv.index("--")
        argv, posargs = argv[:index], argv[index + 1:]
    else:
        posargs = []
    parser = argparse.ArgumentParser(
        prog="python3 -m compat_matrix --tests",
        description="Run the test suite through tox, in every env of tox.ini's envlist or in "
        "those named, with the interpreters and the tools it finds or makes itself. Arguments "
        "after -- go to pytest (instead of tests/).")
    parser.add_argument("-e", "--env", action="append", metavar="ENV[,ENV]",
                        help="only these envs (default: tox.ini's envlist)")
    parser.add_argument("-p", "--parallel", type=int, metavar="N",
                        help="envs at a time (default: 1 for one env, else one per CPU)")
    parser.add_argument("-r", "--recreate", action="store_true", help="re-create the envs")
    parser.add_argument("--list", action="store_true",
                        help="print the envs it would run, one per line, and exit")
    options = parser.parse_args(argv)
    options.posargs = posargs
    options.envs = [name for value in options.env or () for name in value.split(",") if name]
    if options.parallel is not None and options.parallel < 1:
        parser.error("-p must be 1 or more")
    return options


def tox_command(tox, envs, options):
    command = [tox, "-e", ",".join(envs)]
    parallel = options.parallel or (1 if len(envs) == 1 else (os.cpu_count() or 1))
    if parallel > 1 and len(envs) > 1:
        command += ["-p", str(parallel)]
    if options.recreate:
        command.append("-r")
    if options.posargs:
        command += ["--"] + options.posargs
    return command


def main(argv=None):
    options = parse(sys.argv[1:] if argv is None else argv)
    started = time.time()
    try:
        envs = tools.select_envs(options.envs)
        if options.list:
            print("\n".join(envs))
            return 0
        say("%d env(s): %s" % (len(envs), " ".join(envs)))
        tox, environ = tools.prepare(envs, say, servers=True)
        # Our own reading of tox.ini chose the interpreters: it must agree with tox's.
        listed = subprocess.run([tox, "-l"], stdout=subprocess.PIPE, env=environ, cwd=tools.ROOT)
        envlist = tools.tox_envs()[0]
        if listed.returncode != 0 or listed.stdout.decode().split() != envlist:
            raise tools.ToolError("tox -l does not list what compat_matrix/tools.py read in "
                                  "tox.ini's envlist (%s): %s" % (
                                      " ".join(envlist), listed.stdout.decode().strip()))
    except tools.ToolError as error:
        sys.stderr.write("compat_matrix --tests: %s\n" % error)
        return 2
    command = tox_command(tox, envs, options)
    say("$ %s" % " ".join(["tox"] + command[1:]))
    code = subprocess.call(command, env=environ, cwd=tools.ROOT)
    for line in skip_summary(envs, since=started):
        say(line)
    say("tox exited %s after %ds" % (code, time.time() - started))
    return code


def load_summarize(path=SUMMARIZE):
    """.ci/summarize.py as a module (CI's reader of the junit reports), or None without it."""
    if not os.path.isfile(path):
        return None
    spec = importlib.util.spec_from_file_location("connlocal_shim_ci_summarize", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def skip_summary(envs, since, reports=REPORTS, summarize_path=SUMMARIZE):
    """The lines that close a run: its skipped tests grouped by reason, from the junit reports
    the envs wrote in this run (written at ``since`` or later), read by .ci/summarize.py."""
    summarize = load_summarize(summarize_path)
    if summarize is None:
        return []
    parsed, unreadable = {}, []
    for env in envs:
        path = os.path.join(reports, env + ".xml")
        if not os.path.isfile(path) or os.stat(path).st_mtime < since:
            continue  # not run now (docs), or an earlier run's
        try:
            parsed[env] = summarize.parse_report(path)
        except (SyntaxError, ValueError, OSError) as error:  # ElementTree's ParseError is a
            # SyntaxError; ValueError: a root that is not junit's
            unreadable.append("%s: unreadable junit report %s: %s" % (env, path, error))
    grouped = summarize.skips_by_reason(parsed)
    if not grouped:
        return unreadable + (["no test skipped"] if parsed else [])
    total = sum(sum(counts.values()) for counts in grouped.values())
    skipping = set(env for counts in grouped.values() for env in counts)
    return unreadable + ["skipped, by reason (%d test%s, in %d of %d env%s):" % (
        total, "" if total == 1 else "s", len(skipping), len(parsed),
        "" if len(parsed) == 1 else "s")] + summarize.skip_reason_lines(grouped)
