"""Summarise the junit XML reports that `tox -p 2` left in .ci/reports/.

Usage: summarize.py --reports DIR --tox-exit N [--step NAME=EXIT ...] ENV [ENV ...]

ENV are the envs of `tox -l`: each must have written DIR/ENV.xml with at least one
test executed (tests minus skipped > 0).  Prints a per-env table, then, alone on the
last line, "N passed, N failed, N skipped" (totals; errors count as failed).
Above that line, each failed or erring test is named with its env and the first
line of its message (at most FAILURES_SHOWN per env), so that a failure is found
from the end of CI's output alone, without the tox log of its env.
Exits 1 if tox exited non-zero, an env has no (readable) report, an env ran no
test, an env that must run (REQUIRED_ENVS) is not in the list, or a --step (a CI
step that is not a pytest env: the release build, the docs...) exited non-zero.

Reads pytest 4.6's format (a <testsuite> root) and pytest 6+'s (a <testsuites>
root with <testsuite> children).  Standard library only.
"""
from __future__ import print_function

import argparse
import os
import sys
import xml.etree.ElementTree as ET

# The thread-local-connections backport is what these two test: they must never go missing.
REQUIRED_ENVS = ("py27-django12", "py27-django13")

COUNTS = ("tests", "failures", "errors", "skipped")

# Failed tests named per env below the table; an env with more says how many are not shown.
FAILURES_SHOWN = 20
# A "failed:" line is cut at this many characters.
FAILURE_LINE_WIDTH = 300
# Skip reasons listed by skip_reason_lines(), most frequent first; the rest are counted.
SKIP_REASONS_SHOWN = 30


def _int(value):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def parse_report(path):
    """Return the <testsuite> elements of a junit report (root <testsuite> or <testsuites>)."""
    root = ET.parse(path).getroot()
    if root.tag == "testsuite":
        return [root]
    if root.tag == "testsuites":
        return root.findall("testsuite")
    raise ValueError("unexpected root element <%s>" % root.tag)


def _first_line(text, prefix=""):
    """The first non-blank line of ``text`` that starts with ``prefix`` (prefix removed),
    stripped, or ""."""
    for line in text.splitlines():
        if line.startswith(prefix) and line[len(prefix):].strip():
            return line[len(prefix):].strip()
    return ""


def _problem(case):
    """A <testcase>'s <failure>, else its <error>, else None."""
    problem = case.find("failure")
    return problem if problem is not None else case.find("error")


def failed_tests(suites):
    """Return [(test, message)] for each <testcase> of the suites with a failure or error.

    test is "classname::name" (either part alone when the other is missing), message the
    first non-blank line of the failure's message attribute (or else of its text), with the
    traceback's first "E " line when the message does not hold it.
    """
    failed = []
    for suite in suites:
        for case in suite.iter("testcase"):
            problem = _problem(case)
            if problem is None:
                continue
            test = "::".join(part for part in (case.get("classname"), case.get("name")) if part)
            message = _first_line(problem.get("message") or problem.text or "")
            # pytest 4.6 says only "test setup failure" for an error in a fixture: add the
            # first "E   " line of the traceback (the exception) when the message lacks it.
            raised = _first_line(problem.text or "", prefix="E ")
            if raised and raised not in message:
                message = "%s (%s)" % (message, raised) if message else raised
            failed.append((test or "(unnamed test)", "%s: %s" % (problem.tag, message)))
    return failed


def skip_reasons(suites):
    """Return the reason of each skipped <testcase> of the suites (xfails included, as junit
    counts them): the first non-blank line of its <skipped>'s message, else of its text."""
    reasons = []
    for suite in suites:
        for case in suite.iter("testcase"):
            skipped = case.find("skipped")
            if skipped is not None and _problem(case) is None:
                reasons.append(_first_line(skipped.get("message") or skipped.text or "")
                               or "(no reason given)")
    return reasons


def skips_by_reason(reports):
    """{reason: {env: count}} over {env: suites} (parse_report's)."""
    grouped = {}
    for env, suites in reports.items():
        for reason in skip_reasons(suites):
            counts = grouped.setdefault(reason, {})
            counts[env] = counts.get(env, 0) + 1
    return grouped


def skip_reason_lines(grouped, shown=SKIP_REASONS_SHOWN):
    """Lines of ``grouped`` (skips_by_reason's): one per reason, most skips first, with its
    count and, for several envs, each env's; at most ``shown`` reasons, then how many more."""
    order = sorted(grouped, key=lambda reason: (-sum(grouped[reason].values()), reason))
    lines = []
    for reason in order[:shown]:
        counts = grouped[reason]
        envs = sorted(counts)
        where = envs[0] if len(envs) == 1 else ", ".join("%s %d" % (env, counts[env])
                                                          for env in envs)
        lines.append("%5d  %s  [%s]" % (sum(counts.values()), reason, where))
    if len(order) > shown:
        rest = order[shown:]
        lines.append("%5d  skipped for %d other reasons" % (
            sum(sum(grouped[reason].values()) for reason in rest), len(rest)))
    return lines


def read_report(suites):
    """Return dict(tests, failures, errors, skipped) summed over a report's <testsuite>s."""
    total = dict.fromkeys(COUNTS, 0)
    for suite in suites:
        attrs = dict((key, _int(suite.get(key))) for key in COUNTS)
        if any(value is None for value in attrs.values()):
            # No usable counters: count the <testcase> children instead.
            attrs = dict.fromkeys(COUNTS, 0)
            for case in suite.iter("testcase"):
                attrs["tests"] += 1
                problem = _problem(case)
                if problem is not None:
                    attrs["failures" if problem.tag == "failure" else "errors"] += 1
                elif case.find("skipped") is not None:
                    attrs["skipped"] += 1
        for key in COUNTS:
            total[key] += attrs[key]
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", required=True, help="directory of <env>.xml files")
    parser.add_argument("--tox-exit", type=int, required=True, help="tox's exit code")
    parser.add_argument("--step", action="append", default=[], metavar="NAME=EXIT",
                        help="a CI step and its exit code (shown in the table; non-zero fails)")
    parser.add_argument("envs", nargs="*", help="the envs of `tox -l`")
    args = parser.parse_args(argv)
    steps = []
    for step in args.step:
        name, _, code = step.rpartition("=")
        if not name or _int(code) is None:
            parser.error("--step takes NAME=EXIT, not %r" % step)
        steps.append((name, _int(code)))

    problems = []
    if args.tox_exit != 0:
        problems.append("tox exited with code %d" % args.tox_exit)
    if not args.envs:
        problems.append("no envs given (did `tox -l` fail?)")
    for env in REQUIRED_ENVS:
        if env not in args.envs:
            problems.append("%s is not in tox's envlist" % env)

    rows = []
    failures = []
    totals = dict(passed=0, failed=0, skipped=0)
    for env in args.envs:
        path = os.path.join(args.reports, env + ".xml")
        if not os.path.isfile(path):
            rows.append((env, None, "NO REPORT"))
            problems.append("%s: no report %s" % (env, path))
            continue
        try:
            suites = parse_report(path)
            counts = read_report(suites)
        except (ET.ParseError, ValueError, OSError) as exc:
            rows.append((env, None, "BAD REPORT"))
            problems.append("%s: unreadable report %s: %s" % (env, path, exc))
            continue
        failed = counts["failures"] + counts["errors"]
        passed = max(counts["tests"] - failed - counts["skipped"], 0)
        executed = counts["tests"] - counts["skipped"]
        counts["passed"] = passed
        status = "ok"
        if executed <= 0:
            status = "NO TESTS RUN"
            problems.append("%s: no test executed (tests=%d, skipped=%d)"
                            % (env, counts["tests"], counts["skipped"]))
        elif failed:
            status = "FAILED"
            named = failed_tests(suites)
            for test, message in named[:FAILURES_SHOWN]:
                failures.append("failed: %s: %s: %s" % (env, test, message))
            if len(named) > FAILURES_SHOWN:
                failures.append("failed: %s: %d more not shown (in %s)"
                                % (env, len(named) - FAILURES_SHOWN, path))
        rows.append((env, counts, status))
        totals["passed"] += passed
        totals["failed"] += failed
        totals["skipped"] += counts["skipped"]

    width = max([len("env")] + [len(env) for env in args.envs] +
                [len(name) + 5 for name, _ in steps])
    header = "%-*s %7s %7s %7s %7s %7s  %s" % (
        width, "env", "tests", "passed", "failed", "errors", "skipped", "status")
    print()
    print(header)
    print("-" * len(header))
    for env, counts, status in rows:
        if counts is None:
            print("%-*s %7s %7s %7s %7s %7s  %s" % (width, env, "-", "-", "-", "-", "-", status))
        else:
            print("%-*s %7d %7d %7d %7d %7d  %s" % (
                width, env, counts["tests"], counts["passed"], counts["failures"],
                counts["errors"], counts["skipped"], status))
    print("-" * len(header))
    for name, code in steps:
        print("step %-*s %s" % (width - 5, name, "ok" if code == 0 else "FAILED (exit %d)" % code))
        if code != 0:
            problems.append("step %s exited with code %d" % (name, code))
    if steps:
        print("-" * len(header))
    for line in failures:
        print(line[:FAILURE_LINE_WIDTH])
    for problem in problems:
        print("problem: " + problem)
    sys.stdout.flush()
    print("%d passed, %d failed, %d skipped" % (totals["passed"], totals["failed"], totals["skipped"]))
    # Failures normally make tox exit non-zero too; never report green with any.
    return 1 if problems or totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
