"""The compatibility matrix from the records (compat_matrix/results/ENV.json, or a run's own): a
table for the terminal, MATRIX.rst (mirrored into docs/matrix.rst between markers), a
self-contained HTML page, and the connlocal_status outputs docs/diagnostics.rst shows.

``fresh`` is the set of envs probed in this run: their rows say "this run", the others "stored"
(with the commit and date of their record). ``fresh=None`` renders the committed outputs, where
every row is a stored record and says only its date and commit."""
import html
import io
import os
import re
import textwrap

from compat_matrix.columns import (
    BACKPORTED, DIAGNOSTICS, FAILED, FEATURES, MISSING, NATIVE, NOT_APPLICABLE, PASSED,
)

NOT_RUN = "not run"
RST_NOTICE = (".. Written by `python -m compat_matrix` from compat_matrix/results/*.json: "
              "do not edit by hand.")
LEGEND = (
    "Each cell: what the feature is on that Django, then whether the probe's behaviour check "
    "passed. *native*: Django has it (for the routing API: it stands on Django's own "
    "thread-local connections); *backported*: connlocal_shim's backport of ticket #17258 "
    "provides it (for the routing API: it stands on the backport); *unavailable*: not on that "
    "Django, nothing to check; *missing*: the backport should provide it and did not. The "
    "checks use real threads (and asyncio tasks), sqlite files and an in-memory database."
)


def django_release(env):
    """'py27-django13' -> '1.3', 'py313-django110' -> '1.10'."""
    digits = env.rsplit("django", 1)[1]
    return "%s.%s" % (digits[0], digits[1:])


def python_release(env):
    digits = env.split("-", 1)[0][2:]
    return "%s.%s" % (digits[0], digits[1:])


# -- cells ----------------------------------------------------------------------------------------

def cell(record, key):
    """(state, result, detail) of one feature column of a record."""
    if record.get("status") == NOT_RUN:
        return NOT_RUN, None, record.get("reason", "")
    if key == DIAGNOSTICS[0]:
        diagnostics = record.get("diagnostics") or {}
        return None, diagnostics.get("result", FAILED), diagnostics.get("detail", "no result")
    feature = (record.get("features") or {}).get(key)
    if feature is None:
        return MISSING, FAILED, "the probe recorded nothing (%s)" % (
            record.get("reason") or "see the record")
    return feature["state"], feature["result"], feature.get("detail", "")


def cell_text(state, result):
    if state == NOT_RUN:
        return "not run"
    if state is None:
        return "passed" if result == PASSED else "FAILED"
    if result == NOT_APPLICABLE:
        return state
    return "%s, %s" % (state, "passed" if result == PASSED else "FAILED")


TERMINAL_STATE = {NATIVE: "N", BACKPORTED: "B", MISSING: "M"}


def terminal_text(state, result):
    if state == NOT_RUN:
        return "not run"
    if state is None:
        return "ok" if result == PASSED else "FAIL"
    if result == NOT_APPLICABLE:
        return "-"
    return "%s %s" % (TERMINAL_STATE.get(state, state), "ok" if result == PASSED else "FAIL")


COLUMNS = tuple((key, title, label) for key, title, label, _ in FEATURES) + (DIAGNOSTICS[:3],)


def probed(env, record, fresh=None):
    """Where a row comes from: its record's date and commit; in a run's own outputs, whether
    this run probed it or it is a stored record."""
    if not record.get("date"):
        return "no record"
    when = record["date"][:10]
    if record.get("commit"):
        when += ", %s" % record["commit"]
    if fresh is None:
        return when
    return "%s: %s" % ("this run" if env in fresh else "stored", when)


def row_heads(env, record, fresh=None):
    run = record.get("status") != NOT_RUN
    return [
        django_release(env),
        record.get("python") or python_release(env),
        record.get("django") if run else NOT_RUN,
        probed(env, record, fresh),
    ]


HEADS = ("Django", "Python", "Django version", "Probed")
TERMINAL_HEADS = ("Django", "Python", "version", "probed")


def failures(records):
    """(env, column title, detail) of every failed check, and (env, reason) of envs not run."""
    failed, not_run = [], []
    for env, record in records:
        if record.get("status") == NOT_RUN:
            not_run.append((env, record.get("reason", "")))
            continue
        if record.get("probe_error"):
            failed.append((env, "probe", record["probe_error"].strip().splitlines()[-1]))
        for problem in record.get("problems", ()):
            failed.append((env, "run", problem))
        for key, title, _ in COLUMNS:
            state, result, detail = cell(record, key)
            if result == FAILED:
                failed.append((env, title, detail))
    return failed, not_run


# -- terminal -------------------------------------------------------------------------------------

def terminal_probed(env, record, fresh):
    if env in fresh:
        return "this run"
    if not record.get("date"):
        return "no record"
    return "stored %s %s" % (record.get("commit") or "?", record["date"][:10])


def terminal_table(records, fresh=frozenset(), color=False):
    heads = list(TERMINAL_HEADS) + [label for _, _, label in COLUMNS]
    rows = []
    for env, record in records:
        cells = [terminal_text(*cell(record, key)[:2]) for key, _, _ in COLUMNS]
        if record.get("status") == NOT_RUN:
            cells = ["-"] * len(COLUMNS)
        rows.append(row_heads(env, record)[:3] + [terminal_probed(env, record, fresh)] + cells)
    widths = [max(len(str(row[i])) for row in [heads] + rows) for i in range(len(heads))]

    def paint(text, width):
        padded = str(text).ljust(width)
        if not color:
            return padded
        if "FAIL" in text or text == NOT_RUN:
            return "\033[31m%s\033[0m" % padded
        if text.endswith("ok"):
            return "\033[32m%s\033[0m" % padded
        return padded

    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(paint(text, w) for text, w in zip(row, widths)).rstrip())
    lines.append("")
    lines.append("N native, B backported, M missing (install refused), - unavailable; "
                 "ok: the behaviour check passed, FAIL: it did not.")
    lines.append("Columns: " + "; ".join("%s = %s" % (label, title) for _, title, label in COLUMNS))
    stored = len([env for env, _ in records if env not in fresh])
    lines.append("Rows: %d probed in this run, %d from the stored records of compat_matrix/results/"
                 " (\"stored COMMIT DATE\": not probed now)." % (len(records) - stored, stored))
    failed, not_run = failures(records)
    for env, reason in not_run:
        lines.append("NOT RUN %s: %s" % (env, reason))
    for env, title, detail in failed:
        lines.append("FAILED %s, %s: %s" % (env, title, detail))
    return "\n".join(lines) + "\n"


# -- reStructuredText -----------------------------------------------------------------------------

def simple_table(heads, rows, head_width=14):
    """A reStructuredText simple table, one line per row; long headers wrap onto continuation
    lines (a blank first column continues the row above)."""
    wrapped = [textwrap.wrap(head, max(head_width, max(len(w) for w in head.split()))) or [""]
               for head in heads]
    widths = [max([len(line) for line in lines] + [len(row[i]) for row in rows])
              for i, lines in enumerate(wrapped)]
    rule = "  ".join("=" * width for width in widths)

    def line(cells):
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    out = [rule]
    for index in range(max(len(lines) for lines in wrapped)):
        out.append(line([lines[index] if index < len(lines) else "" for lines in wrapped]))
    out.append(rule)
    out.extend(line(row) for row in rows)
    out.append(rule)
    return out


def rst_body(records, fresh=None):
    """MATRIX.rst without its title: what docs/matrix.rst mirrors."""
    heads = list(HEADS) + [title for _, title, _ in COLUMNS]
    rows = []
    for env, record in records:
        values = row_heads(env, record, fresh)
        for key, _, _ in COLUMNS:
            state, result, _ = cell(record, key)
            values.append(cell_text(state, result))
        rows.append([rst_escape(value) or "-" for value in values])
    lines = simple_table([rst_escape(head) for head in heads], rows)
    lines += [""] + paragraph(LEGEND) + [""]
    lines += paragraph("The *%s* column: %s." % (rst_escape(DIAGNOSTICS[1]),
                                                 rst_escape(DIAGNOSTICS[3])))
    if fresh is not None:
        lines += [""] + paragraph(
            "*Probed*: \"this run\" for the %d row(s) this run probed; \"stored\" for the rows "
            "taken from the records in compat_matrix/results/, with their date and commit."
            % len([env for env, _ in records if env in fresh]))
    failed, not_run = failures(records)
    if not_run or failed:
        lines.append("")
    for env, reason in not_run:
        lines += paragraph("- Not run: ``%s``: %s" % (env, rst_escape(reason)), "  ")
    for env, title, detail in failed:
        lines += paragraph("- FAILED: ``%s``, %s: %s" % (
            env, rst_escape(title), rst_escape(detail)), "  ")
    commits = sorted(set(record.get("commit") or "unknown" for _, record in records
                         if record.get("status") != NOT_RUN))
    lines += [""] + paragraph(
        "Probed at commit %s of connlocal-shim; what each check verified, per env: "
        "``compat_matrix/matrix.html``." % ", ".join(commits))
    return "\n".join(lines) + "\n"


def rst_escape(text):
    """Plain text as reStructuredText inline text, on one line."""
    text = str(text)
    for special in ("\\", "*", "`", "|"):
        text = text.replace(special, "\\" + special)
    text = re.sub(r"_(?!\w)", r"\\_", text)  # a trailing underscore makes a reference
    return " ".join(text.split())


def paragraph(text, indent=""):
    return textwrap.wrap(text, 99, subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=False)


def matrix_rst(records, fresh=None):
    title = "Compatibility matrix"
    return "%s\n\n%s\n%s\n\n%s" % (RST_NOTICE, title, "=" * len(title), rst_body(records, fresh))


def literal_block(text):
    return "::\n\n" + "\n".join(("    " + line).rstrip() for line in text.rstrip().splitlines())


MARKER = re.compile(
    r"(?P<begin>^\.\. BEGIN compat_matrix (?P<what>[\w.-]+)(?P<arg> [\w.-]+)?\n)"
    r"(?P<body>.*?)"
    r"(?P<end>^\.\. END compat_matrix (?P=what)[^\n]*\n)",
    re.M | re.S,
)


def mirror_into(path, records):
    """Rewrite the blocks of ``path`` between ``.. BEGIN compat_matrix WHAT [ENV]`` and
    ``.. END compat_matrix WHAT``: WHAT is ``table`` (the matrix) or ``connlocal_status``
    (the command's output in ENV, or in the newest env run for ``latest``). Returns what it
    could not fill."""
    with io.open(path, encoding="utf-8") as handle:
        text = handle.read()
    by_env = dict(records)
    missing = []

    def replace(match):
        what, arg = match.group("what"), (match.group("arg") or "").strip()
        if what == "table":
            body = "\n" + rst_body(records) + "\n"
        elif what == "connlocal_status":
            env = arg
            if arg == "latest":
                run = [e for e, r in records if r.get("status_command_output")]
                env = run[-1] if run else None
            record = by_env.get(env) or {}
            output = record.get("status_command_output")
            if not output:
                missing.append("connlocal_status output of %s" % (arg or "?"))
                return match.group(0)
            body = "\n``manage.py connlocal_status`` on Django %s, Python %s (%s)::\n\n%s\n\n" % (
                record["django"], record["python"], record["date"][:10],
                literal_block(output)[len("::\n\n"):])
        else:
            missing.append("unknown block %r" % what)
            return match.group(0)
        return match.group("begin") + body + match.group("end")

    new_text = MARKER.sub(replace, text)
    if new_text != text:
        with io.open(path, "w", encoding="utf-8") as handle:
            handle.write(new_text)
    return missing


# -- HTML -----------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.native { background: #e3f4e3; }
td.backported { background: #dbe9fb; }
td.unavailable { background: #f3f3f3; color: #777; }
td.failed, td.missing { background: #fbdada; font-weight: bold; }
td.notrun { background: #fff1c9; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.4em 0; }
"""


def css_class(state, result):
    if state == NOT_RUN:
        return "notrun"
    if result == FAILED:
        return "failed"
    if state is None:
        return "native"
    return state


def matrix_html(records, fresh=None):
    e = html.escape
    # The date of the newest record, not of the rendering: the same records, the same page.
    generated = max([r.get("date") or "" for _, r in records] + [""])[:10] or "no run yet"
    out = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>connlocal-shim compatibility matrix</title>",
        "<style>%s</style></head><body>" % CSS,
        "<h1>connlocal-shim compatibility matrix</h1>",
        "<p>Written by <code>python -m compat_matrix</code> (last run %s) from the records in "
        "<code>compat_matrix/results/</code>. Hover a cell for what its check verified, or "
        "read the details below.</p>" % e(generated),
        "<p>%s</p>" % e(LEGEND).replace("*", ""),
        "<table><thead><tr>",
    ]
    out.extend("<th>%s</th>" % e(head) for head in HEADS)
    out.extend("<th title=\"%s\">%s</th>" % (e(describe), e(title))
               for (_, title, _), describe in zip(COLUMNS, [f[3] for f in FEATURES] +
                                                  [DIAGNOSTICS[3]]))
    out.append("</tr></thead><tbody>")
    for env, record in records:
        out.append("<tr>")
        out.extend("<td>%s</td>" % e(str(value)) for value in row_heads(env, record, fresh))
        for key, _, _ in COLUMNS:
            state, result, detail = cell(record, key)
            out.append("<td class=\"%s\" title=\"%s\">%s</td>" % (
                css_class(state, result), e(detail or ""), e(cell_text(state, result))))
        out.append("</tr>")
    out.append("</tbody></table>")
    failed, not_run = failures(records)
    if failed or not_run:
        out.append("<h2>Failed and not run</h2><ul>")
        out.extend("<li><b>%s</b> not run: %s</li>" % (e(env), e(reason))
                   for env, reason in not_run)
        out.extend("<li><b>%s</b>, %s: %s</li>" % (e(env), e(title), e(detail))
                   for env, title, detail in failed)
        out.append("</ul>")
    out.append("<h2>Per env</h2>")
    for env, record in records:
        out.append("<details><summary><b>%s</b>: %s</summary>" % (
            e(env), e(record.get("summary") or record.get("status", ""))))
        if record.get("status") == NOT_RUN:
            out.append("<p>Not run: %s</p></details>" % e(record.get("reason", "")))
            continue
        out.append("<p>Django %s on %s %s, connlocal-shim %s at commit %s, %s; build %ss, "
                   "probe %ss.</p>" % tuple(e(str(record.get(name))) for name in (
                       "django", "python_implementation", "python", "connlocal_shim", "commit",
                       "date", "build_seconds", "probe_seconds")))
        out.append("<table><tr><th>feature</th><th>state, check</th><th>what was verified"
                   "</th></tr>")
        for key, title, _ in COLUMNS:
            state, result, detail = cell(record, key)
            out.append("<tr><td>%s</td><td class=\"%s\">%s</td><td>%s</td></tr>" % (
                e(title), css_class(state, result), e(cell_text(state, result)),
                e(detail or "")))
        out.append("</table>")
        info = (record.get("install_log") or {}).get("info") or []
        if info:
            out.append("<p>install() logged: <code>%s</code></p>" % e(" | ".join(info)))
        shim = record.get("shim_status")
        if shim:
            out.append("<p>In the probe's process: %s; %d patches; classes rebuilt: %s; "
                       "captured references redirected: %s.</p>" % (
                           e("refused: %s" % shim["refused"] if shim["refused"] else
                             "installed" if shim["installed"] else "not installed"),
                           len(shim["patches"]),
                           e(", ".join(shim["rebuilt_classes"]) or "none"),
                           e(", ".join(shim["redirected_references"]) or "none")))
        if record.get("probe_error"):
            out.append("<pre>%s</pre>" % e(record["probe_error"]))
        if record.get("status_command_output"):
            out.append("<p><code>manage.py connlocal_status</code>:</p><pre>%s</pre>" % e(
                record["status_command_output"]))
        if record.get("check_command_output"):
            out.append("<p><code>manage.py check</code>:</p><pre>%s</pre>" % e(
                record["check_command_output"]))
        out.append("</details>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_outputs(directory, records, fresh=None):
    """MATRIX.rst and matrix.html in ``directory``; returns their paths."""
    if not os.path.isdir(directory):
        os.makedirs(directory)
    paths = []
    for name, text in (("MATRIX.rst", matrix_rst(records, fresh)),
                       ("matrix.html", matrix_html(records, fresh))):
        path = os.path.join(directory, name)
        with io.open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        paths.append(path)
    return paths
