"""Apache httpd with mod_wsgi in daemon mode, serving the greenlet site (greenproject/) as
docs/servers.rst deploys a Django 1.2/1.3 site: the page's mod_wsgi lines, its paths replaced,
after a preamble of the test's own (the port, the modules, the logs, the daemon user).

    runtime = Runtime(directory)         # Python and the site where the daemon user reads them
    with ApacheServer(runtime, env, workdir, maximum_requests=50) as server:
        server.url                       # http://127.0.0.1:PORT
        server.daemon_pids()             # mod_wsgi's daemon processes (display-name=%{GROUP})
        server.restart_daemons()         # SIGUSR1 to each: mod_wsgi's graceful daemon restart
        server.touch_script()            # the WSGI script changed: each daemon reloads
        server.graceful()                # apachectl graceful: SIGUSR1 to Apache's parent

Apache needs Debian's apache2 (the server) and, to build mod_wsgi (``pip install mod_wsgi``),
apache2-dev (apxs). Run as root, Apache's parent stays root and its children and mod_wsgi's
daemons run as www-data (or nobody), who cannot read what lives under /root (pyenv's
interpreters, a checkout there): Runtime copies the Python home and the env's site-packages,
with the site and connlocal_shim, into a directory they can read. Apache's parent loads the
module and libpython as root, before it switches user.
"""
import io
import os
import pwd
import re
import shutil
import signal
import sys
import threading
import time

import gunicorn_server

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs", "servers.rst")
DOC_MARK = ".. tested: tests/greenlets/apache.py"
SITE = os.path.join(HERE, "greenproject")
# What docs/servers.rst's lines name, and what the test puts there.
DOC_PYTHON_HOME = "/srv/mysite/venv"
DOC_SITE = "/srv/mysite"
DOC_PROJECT = "mysite"
DAEMON_USERS = ("www-data", "nobody")
# Apache's own answer when a request cannot reach a daemon process: mod_wsgi retries its
# connection only while the daemon's socket refuses (ECONNREFUSED, EAGAIN), not while the
# socket file is absent, as it is for a moment during `apachectl graceful` (mod_wsgi 4.9.4,
# src/server/mod_wsgi.c, wsgi_connect_daemon).
UNABLE_TO_CONNECT = "Unable to connect to WSGI daemon process"
# ... and when the daemon serving a request stopped before it answered (the daemons that
# apachectl graceful stops).
TRUNCATED = "Truncated or oversized response headers received from daemon process"
# What Apache logs when a daemon process (mod_wsgi, at level info) or one of its own children
# dies of a signal.
DAEMON_CRASHED = ("terminated by signal", "exit signal")

PREAMBLE = u"""# Written by connlocal-shim's tests/greenlets/apache.py: the test's own lines, then
# docs/servers.rst's, its paths replaced.
ServerRoot "%(root)s"
ServerName 127.0.0.1
Listen 127.0.0.1:%(port)d
PidFile "%(root)s/httpd.pid"
ErrorLog "%(root)s/error.log"
LogLevel info
LoadModule mpm_event_module "%(modules)s/mod_mpm_event.so"
LoadModule authz_core_module "%(modules)s/mod_authz_core.so"
LoadModule wsgi_module "%(mod_wsgi)s"
%(user)sWSGISocketPrefix "%(root)s/wsgi"

"""


class ApacheMissing(Exception):
    """What is not installed here, and how to install it."""


def find():
    """(httpd, its modules directory, mod_wsgi's module), or ApacheMissing saying what to
    install."""
    try:
        from mod_wsgi.server import apxs_config, where
    except ImportError as error:
        raise ApacheMissing("no mod_wsgi (%s): apt-get install apache2 apache2-dev, then "
                            "pip install mod_wsgi" % error)
    module = where()
    httpd = apxs_config.HTTPD
    if not os.path.isabs(httpd) or not os.access(httpd, os.X_OK):
        raise ApacheMissing("no Apache httpd (%s, as mod_wsgi was built for): apt-get install "
                            "apache2" % os.path.join(apxs_config.SBINDIR, apxs_config.PROGNAME))
    for name in ("mod_mpm_event.so", "mod_authz_core.so"):
        if not os.path.exists(os.path.join(apxs_config.LIBEXECDIR, name)):
            raise ApacheMissing("Apache's %s is not in %s: apt-get install apache2" % (
                name, apxs_config.LIBEXECDIR))
    return httpd, apxs_config.LIBEXECDIR, module


def daemon_user():
    """(user, group) Apache's children run as when it starts as root; None otherwise."""
    if os.geteuid() != 0:
        return None
    for name in DAEMON_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        import grp

        return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name
    raise ApacheMissing("no OS user for Apache's children (%s)" % ", ".join(DAEMON_USERS))


def give_to_daemon_user(path):
    """The daemon user may write ``path`` and what is in it (the sqlite file, its journal)."""
    user = daemon_user()
    if user is None:
        return
    entry = pwd.getpwnam(user[0])
    for directory, _, files in os.walk(path):
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(directory, name), entry.pw_uid, entry.pw_gid)


def _python_home():
    return getattr(sys, "real_prefix", None) or getattr(sys, "base_prefix", sys.prefix)


def _site_packages():
    import django

    return os.path.dirname(os.path.dirname(os.path.abspath(django.__file__)))


class Runtime(object):
    """This interpreter's Python home and site-packages, the site (greenproject/) and
    connlocal_shim, copied under ``directory`` and readable by everyone: mod_wsgi's
    python-home and python-path."""

    def __init__(self, directory):
        import connlocal_shim

        self.directory = directory
        self.python_home = os.path.join(directory, "python")
        self.site = os.path.join(directory, "site")
        home = _python_home()
        library = os.path.join(home, "lib", "python%d.%d" % sys.version_info[:2])

        def leave_out(path, names):
            # The standard library's own tests and the home's site-packages (python-path
            # brings the env's): not needed to serve.
            if os.path.abspath(path) == library:
                return [name for name in names if name in ("test", "site-packages")]
            return []

        shutil.copytree(home, self.python_home, symlinks=True, ignore=leave_out)
        shutil.copytree(_site_packages(), self.site, symlinks=True)
        shim = os.path.dirname(os.path.abspath(connlocal_shim.__file__))
        if not os.path.isdir(os.path.join(self.site, "connlocal_shim")):
            shutil.copytree(shim, os.path.join(self.site, "connlocal_shim"))
        project = os.path.join(self.site, "greenproject")
        if os.path.exists(project):
            shutil.rmtree(project)
        shutil.copytree(SITE, project)
        self.script = os.path.join(project, "wsgi.py")
        for path, directories, files in os.walk(directory):
            for name in directories + files:
                full = os.path.join(path, name)
                if not os.path.islink(full):
                    os.chmod(full, os.stat(full).st_mode | 0o444 | (
                        0o111 if os.path.isdir(full) else 0))
        os.chmod(directory, 0o755)


def documented_block():
    """docs/servers.rst's mod_wsgi lines: the code block after DOC_MARK, dedented."""
    with io.open(DOC, encoding="utf-8") as handle:
        text = handle.read()
    if DOC_MARK not in text:
        raise AssertionError("docs/servers.rst has no %r" % DOC_MARK)
    block = text.split(DOC_MARK, 1)[1].split(".. code-block:: apacheconf", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def block_for_test(block, runtime, maximum_requests):
    """The documented lines with this run's paths, and its maximum-requests (the page's value is
    for a site; the test's makes the daemons recycle within one run)."""
    block = block.replace(DOC_PYTHON_HOME, runtime.python_home)
    block = block.replace(DOC_SITE + "/" + DOC_PROJECT, os.path.dirname(runtime.script))
    block = block.replace(DOC_SITE, runtime.site)
    block, count = re.subn(r"maximum-requests=\d+", "maximum-requests=%d" % maximum_requests,
                           block)
    if count != 1:
        raise AssertionError("docs/servers.rst's WSGIDaemonProcess line has %d "
                             "maximum-requests options, expected 1:\n%s" % (count, block))
    return block


def _parent_of(pid):
    with open("/proc/%d/stat" % pid) as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _command_line(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()


class ApacheServer(gunicorn_server.GunicornServer):
    """Apache in the foreground (``-DFOREGROUND``), its parent the process started; stopped as
    a gunicorn master is (SIGTERM: Apache stops its children and mod_wsgi's daemons)."""

    def __init__(self, runtime, env, workdir, maximum_requests, ready_timeout=30):
        env = dict(env)
        env.pop("PYTHONPATH", None)  # the daemons' path is python-path=
        root = os.path.join(workdir, "apache")
        # Apache's error log, where its output before it opens the log goes too.
        gunicorn_server.GunicornServer.__init__(
            self, None, env, os.path.join(root, "error.log"), ready_timeout=ready_timeout,
            chdir=workdir)
        self.httpd, self.modules, self.mod_wsgi = find()
        self.runtime = runtime
        self.root = root
        self.maximum_requests = maximum_requests
        self.config = os.path.join(self.root, "httpd.conf")
        if not os.path.isdir(self.root):
            os.mkdir(self.root)
        os.chmod(self.root, 0o755)

    def command(self, port):
        user = daemon_user()
        text = PREAMBLE % {
            "root": self.root, "port": port, "modules": self.modules, "mod_wsgi": self.mod_wsgi,
            "user": "User %s\nGroup %s\n" % user if user else "",
        }
        text += block_for_test(documented_block(), self.runtime, self.maximum_requests)
        with io.open(self.config, "w", encoding="utf-8") as handle:
            handle.write(text)
        return [self.httpd, "-f", self.config, "-DFOREGROUND"]

    def daemon_pids(self):
        """The pids of mod_wsgi's daemon processes now (named ``(wsgi:GROUP)``)."""
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            try:
                if (_parent_of(pid) == self.process.pid
                        and _command_line(pid).startswith("(wsgi:")):
                    found.append(pid)
            except (IOError, OSError, IndexError, ValueError):
                continue  # gone meanwhile
        return sorted(found)

    def restart_daemons(self, timeout=30):
        """mod_wsgi's graceful restart of each daemon process (SIGUSR1, mod_wsgi 4.1+): it
        stops taking requests once it has none under way or eviction-timeout has passed,
        finishes those under way and exits; Apache starts another. Returns (the pids
        signalled, those that replaced them) once as many new daemons run, or after
        ``timeout`` seconds (then fewer)."""
        old = self.daemon_pids()
        for pid in old:
            os.kill(pid, signal.SIGUSR1)
        return old, self.wait_for_new_daemons(old, timeout)

    def wait_for_new_daemons(self, old, timeout=30):
        """The daemon pids not in ``old``, once there are len(old) of them (or after
        ``timeout`` seconds)."""
        deadline = time.time() + timeout
        pause = threading.Event()
        while True:
            new = [pid for pid in self.daemon_pids() if pid not in old]
            if len(new) >= len(old) or time.time() >= deadline:
                return new
            pause.wait(0.05)

    def touch_script(self):
        """The WSGI script changed (as a deploy does): each daemon reloads at its next
        request (WSGIScriptReloading, on by default). mod_wsgi compares modification times
        in whole seconds, and a daemon may have loaded the script within this second: the
        new time is the old one plus two seconds, different whatever the clock says."""
        modified = os.stat(self.runtime.script).st_mtime
        os.utime(self.runtime.script, (modified + 2, modified + 2))

    def graceful(self):
        """apachectl graceful: Apache's parent re-reads its configuration, its children finish
        their requests, mod_wsgi's daemons are restarted."""
        os.kill(self.process.pid, signal.SIGUSR1)

    def error_log_counts(self):
        """{line: how many times the error log says it} for UNABLE_TO_CONNECT, TRUNCATED and
        DAEMON_CRASHED's."""
        try:
            with io.open(self.log_path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except (IOError, OSError):
            text = u""
        return dict((line, text.count(line))
                    for line in (UNABLE_TO_CONNECT, TRUNCATED) + DAEMON_CRASHED)
