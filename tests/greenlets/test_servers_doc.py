"""docs/servers.rst, as written: its ``wsgi.py`` is the one the greenlet site serves
(greenproject/wsgi.py, ``mysite`` read as ``greenproject``), and each of its server commands
(the ``$ gunicorn ...`` and ``$ uwsgi ...`` lines) serves that site under load, on an sqlite
file and on PostgreSQL, judged as the gunicorn worker runs are (greenload.py). The commands run
as the page gives them, with the project and the port replaced, gunicorn through this
interpreter and uWSGI from this environment, plus what a test needs: the site's directory and
a log at warning level."""
import io
import os
import re
import sys

import pytest

import greenlib
import greenload
from support import requires_postgres

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs", "servers.rst")
SITE_WSGI = os.path.join(HERE, "greenproject", "wsgi.py")
WSGI_MARK = ".. tested: tests/greenlets/greenproject/wsgi.py"
RUN_GUNICORN = "from gunicorn.app.wsgiapp import run; run()"


def read_doc():
    with io.open(DOC, encoding="utf-8") as handle:
        return handle.read()


def documented_commands():
    """The ``$ gunicorn ...`` / ``$ uwsgi ...`` lines of docs/servers.rst, in order."""
    return [line.strip()[2:] for line in read_doc().splitlines()
            if re.match(r"\s+\$ (gunicorn|uwsgi) ", line)]


def code_lines(text):
    """The statements of a Python source: no docstring, comments or blank lines."""
    text = re.sub(r'^"""(.|\n)*?"""\n', "", text.lstrip())
    lines = [re.sub(r"\s+#.*$", "", line).rstrip() for line in text.splitlines()]
    return [line for line in lines if line and not line.lstrip().startswith("#")]


def documented_wsgi():
    """The code block after WSGI_MARK, dedented."""
    after = read_doc().split(WSGI_MARK, 1)[1]
    block = after.split(".. code-block:: python", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


def command_for_test(command):
    """The documented command as this test runs it (see the module docstring)."""
    argv = command.replace("mysite.", "greenproject.").replace("127.0.0.1:8000", "127.0.0.1:{port}")
    argv = argv.split()
    if argv[0] == "gunicorn":
        return [sys.executable, "-c", RUN_GUNICORN] + argv[1:] + [
            "--chdir", HERE, "--log-level", "warning", "--error-logfile", "-"]
    uwsgi = os.path.join(os.path.dirname(sys.executable), "uwsgi")
    return [uwsgi] + argv[1:] + ["--chdir", HERE, "--pythonpath", HERE, "--disable-logging"]


def needs(command):
    """What a command needs installed here: (module, pip package) pairs."""
    argv = command.split()
    wanted = [("gunicorn", "gunicorn")] if argv[0] == "gunicorn" else []
    for worker, package in (("gevent", "gevent"), ("eventlet", "eventlet"),
                            ("gthread", "futures")):
        if worker in argv:
            wanted.append(("concurrent.futures", package) if worker == "gthread"
                          else (worker, package))
    return wanted


def command_id(command):
    """gunicorn-sync, gunicorn-gevent-preload, uwsgi-threads..."""
    argv = command.split()
    kind = "sync"
    if "--worker-class" in argv:
        kind = argv[argv.index("--worker-class") + 1]
    elif "--threads" in argv:
        kind = "threads"
    return "-".join([argv[0], kind] + (["preload"] if "--preload" in argv else []))


COMMANDS = documented_commands()


def test_the_page_documents_each_server():
    servers = " | ".join(COMMANDS)
    for expected in ("gunicorn --workers", "--worker-class gthread", "--worker-class gevent",
                     "--worker-class eventlet", "gunicorn --preload", "uwsgi "):
        assert expected in servers, "docs/servers.rst lacks a %r command: %s" % (expected, COMMANDS)


def test_the_documented_wsgi_py_is_the_one_the_site_serves():
    with io.open(SITE_WSGI, encoding="utf-8") as handle:
        served = code_lines(handle.read())
    documented = [line.replace("mysite.", "greenproject.")
                  for line in code_lines(documented_wsgi())]
    assert documented == served, "docs/servers.rst's wsgi.py:\n%s\n\nthe site's:\n%s" % (
        "\n".join(documented), "\n".join(served))


@pytest.mark.parametrize("database", [
    "sqlite", pytest.param("postgres", marks=requires_postgres)])
@pytest.mark.parametrize("command", COMMANDS, ids=[command_id(c) for c in COMMANDS])
def test_a_documented_server_command_under_load(command, database, workdir, figures):
    for module, package in needs(command):
        greenlib.require(module, package)
    program = command_for_test(command)[0]
    if command.startswith("uwsgi") and not os.path.exists(program):
        greenlib.missing("no uWSGI program %s: pip install uwsgi" % program)
    figures.add("docs/servers.rst", command)
    site = greenload.Site(database, workdir)
    server = greenload.DocumentedServer(
        command_for_test(command), site.env(), os.path.join(workdir, "server.log"))
    problems = greenload.serve_and_judge(server, site, figures, command)
    assert not problems, "%s on %s: %d problems:\n%s" % (
        command, database, len(problems), "\n".join(problems[:40]))
