"""A throwaway MariaDB server for one test process (issue 13), shaped like tests/pg_cluster.py.

    server = MariaDBServer(find_server())
    server.start(("master", "replica", "audit"))    # mariadb-install-db, mariadbd, CREATE DATABASE
    # ... connect to 127.0.0.1:server.port as user "root", no password
    server.stop()                                    # mariadbd killed, directory removed

Each process has its own server, in its own temporary directory (data, socket, pid file, log)
and on its own free port of 127.0.0.1 (`tox -p 2` runs two envs at once). The server reads no
option file (--no-defaults: nothing of /etc/mysql applies), keeps no binary log and does not
flush at commit: the data lives for one session. Its character set is utf8mb4, as Debian's
packaged configuration makes it; sql_mode and the storage engine are MariaDB 10.11's defaults
(strict, InnoDB), which docs/databases.rst compares with those of Django 1.3's time.

start() registers stop() with atexit and on SIGTERM, and stops what it began when it fails
half-way; stop() may be called any number of times. As root, the server runs as the `mysql` OS
user (mariadbd refuses to run as root unless told to), which then owns the directory.
"""
import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import throwaway

INSTALL_HINT = "apt-get install mariadb-server"
SUPERUSER = "root"
SERVER_ACCOUNT = "mysql"
HOST = throwaway.HOST
DIRECTORY_PREFIX = "connlocal-shim-mariadb-"
# The server programs, by their MariaDB names and the MySQL names older packages used.
PROGRAMS = {
    "install": ("mariadb-install-db", "mysql_install_db"),
    "server": ("mariadbd", "mysqld"),
    "client": ("mariadb", "mysql"),
}
# mariadbd lives in /usr/sbin on Debian, which a user's PATH may lack.
EXTRA_DIRECTORIES = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec")
# Durability is worth nothing here and costs seconds per session.
SERVER_OPTIONS = (
    "--skip-log-bin",
    "--skip-name-resolve",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=32M",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    # Django's own suite keeps a few connections per thread of the tests; 1,000 churn threads.
    "--max-connections=300",
)
# mariadbd's log line when another process took the port between our probe and its bind.
PORT_TAKEN = re.compile(r"Address already in use|Can't start server: Bind")
START_ATTEMPTS = 3
START_TIMEOUT = 60
STOP_TIMEOUT = 30


class ServerError(Exception):
    """The server could not be started; the message says why and what to do."""


def find_program(kind, path=None):
    """The path of one of PROGRAMS[kind] on PATH (or in EXTRA_DIRECTORIES), None if none."""
    entries = (os.environ.get("PATH", "") if path is None else path).split(os.pathsep)
    directories = [entry for entry in entries if entry] + list(EXTRA_DIRECTORIES)
    for name in PROGRAMS[kind]:
        for directory in directories:
            found = throwaway.executable(directory, name)
            if found:
                return found
    return None


def find_server(path=None):
    """{kind: path} of the install, server and client programs; None if one is missing."""
    found = dict((kind, find_program(kind, path)) for kind in PROGRAMS)
    return found if all(found.values()) else None


def _server_account():
    """(uid, gid, name) of the OS user to run the server as when we are root; None (ourselves)
    otherwise."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        raise ServerError(
            "running as root, and there is no %r OS user to run mariadbd as (%s creates it)"
            % (SERVER_ACCOUNT, INSTALL_HINT)
        )
    return entry.pw_uid, entry.pw_gid, SERVER_ACCOUNT


def _kill_from_pid_file(pid_file, signum=signal.SIGKILL):
    """Signal the server whose pid is in ``pid_file``; nothing if it is gone already."""
    try:
        with open(pid_file) as handle:
            os.kill(int(handle.read().strip()), signum)
    except (IOError, OSError, ValueError):
        pass


class MariaDBServer(object):
    """One throwaway server; see the module docstring."""

    def __init__(self, programs):
        self.programs = programs
        self.directory = None
        self.port = None
        self.version = None
        self._account = None
        self._process = None

    @property
    def data_directory(self):
        return os.path.join(self.directory, "data")

    @property
    def socket_path(self):
        return os.path.join(self.directory, "mariadb.sock")

    @property
    def pid_file(self):
        return os.path.join(self.directory, "mariadb.pid")

    @property
    def log_file(self):
        return os.path.join(self.directory, "server.log")

    @property
    def tmp_directory(self):
        # The server's temporary files (the bootstrap's temporary tables too) in its own
        # directory, not in the /tmp every other server of the machine shares: a bootstrap
        # failed once in CI deleting its '/tmp/#sql-temptable-...' file, which was gone.
        return os.path.join(self.directory, "tmp")

    def start(self, databases=()):
        """Make the data directory, start the server and create ``databases`` (utf8mb4);
        returns self. On failure, stops and removes what it made and raises ServerError."""
        if self.directory is not None:
            raise ServerError("this server is already started, in %s" % self.directory)
        self._account = _server_account()
        atexit.register(self.stop)
        throwaway.stop_on_sigterm(self.stop)
        with self._stopped_on_failure("the server's directory"):
            self._make_directory()
            command = [
                self.programs["install"], "--no-defaults", "--datadir=" + self.data_directory,
                "--auth-root-authentication-method=normal", "--skip-test-db",
                "--tmpdir=" + self.tmp_directory,
            ]
            if self._account is not None:
                command.append("--user=" + self._account[2])
            self._run(command)
            self._start_server()
            self.version = self.sql("SELECT VERSION()").strip()
            for name in databases:
                self.sql("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % name)
        return self

    @contextlib.contextmanager
    def _stopped_on_failure(self, what):
        try:
            yield
        except (IOError, OSError) as error:
            self.stop()
            raise ServerError("could not set up %s: %s" % (what, error))
        except BaseException:
            self.stop()
            raise

    def _make_directory(self):
        self.directory = tempfile.mkdtemp(
            prefix=DIRECTORY_PREFIX, dir=os.environ.get("CONNLOCAL_SHIM_MARIADB_TMPDIR")
        )
        os.mkdir(self.tmp_directory)
        if self._account is not None:
            for path in (self.directory, self.tmp_directory):
                os.chown(path, self._account[0], self._account[1])

    def _start_server(self):
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = throwaway.free_port()
            command = [
                self.programs["server"], "--no-defaults", "--datadir=" + self.data_directory,
                "--socket=" + self.socket_path, "--pid-file=" + self.pid_file,
                "--port=%d" % self.port, "--bind-address=" + HOST,
                "--log-error=" + self.log_file, "--tmpdir=" + self.tmp_directory,
            ] + list(SERVER_OPTIONS)
            if self._account is not None:
                command.append("--user=" + self._account[2])
            devnull = open(os.devnull, "wb")  # what it says goes to its --log-error file
            try:
                self._process = subprocess.Popen(
                    command, stdout=devnull, stderr=subprocess.STDOUT, cwd=self.directory,
                    close_fds=True,
                )
            except OSError as error:
                raise ServerError("could not run %s: %s" % (" ".join(command), error))
            finally:
                devnull.close()
            if self._wait_until_ready():
                return
            self._process.wait()
            if attempt == START_ATTEMPTS or not PORT_TAKEN.search(self._log_tail()):
                raise ServerError("mariadbd exited with status %s\nserver log %s:\n%s" % (
                    self._process.returncode, self.log_file, self._log_tail()))

    def _wait_until_ready(self):
        """Poll (bounded) until the server answers on its socket: True; False if it exited."""
        deadline = time.time() + START_TIMEOUT
        pause = threading.Event()
        while time.time() < deadline:
            if self._process.poll() is not None:
                return False
            if os.path.exists(self.socket_path):
                try:
                    self.sql("SELECT 1")
                    return True
                except ServerError:
                    pass
            pause.wait(0.05)
        self._process.kill()
        raise ServerError("mariadbd did not answer within %ss\nserver log %s:\n%s" % (
            START_TIMEOUT, self.log_file, self._log_tail()))

    def stop(self):
        """Stop the server (killed: nothing is kept) and remove the directory."""
        directory, self.directory = self.directory, None
        if directory is None:
            return
        try:
            process, self._process = self._process, None
            if process is not None and process.poll() is None:
                process.kill()
                _wait(process, STOP_TIMEOUT)
            else:  # a server this object did not start (stop_leftovers)
                _kill_from_pid_file(os.path.join(directory, "mariadb.pid"))
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def sql(self, statement, database=None):
        """Run ``statement`` with the command-line client over the socket, as root; return its
        output (tab-separated, no column names) or raise ServerError."""
        command = [
            self.programs["client"], "--no-defaults", "--socket=" + self.socket_path,
            "--user=" + SUPERUSER, "--batch", "--skip-column-names", "--execute", statement,
        ]
        if database:
            command.append(database)
        return self._run(command)

    def _run(self, command):
        try:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.directory,
            )
            output = process.communicate()[0].decode("utf-8", "replace")
        except OSError as error:
            raise ServerError("could not run %s: %s" % (" ".join(command), error))
        if process.returncode != 0:
            raise ServerError(
                "%s exited with status %s:\n%s" % (" ".join(command), process.returncode, output)
            )
        return output

    def _log_tail(self, lines=20):
        return throwaway.log_tail(self.log_file, lines)


def _wait(process, timeout):
    deadline = time.time() + timeout
    pause = threading.Event()
    while process.poll() is None and time.time() < deadline:
        pause.wait(0.02)


def stop_leftovers(parent):
    """Stop and remove every server directory start() left under ``parent`` (a process killed
    before its atexit ran); return their paths. For .ci/run (CONNLOCAL_SHIM_MARIADB_TMPDIR)."""
    found = sorted(glob.glob(os.path.join(parent, DIRECTORY_PREFIX + "*")))
    for directory in found:
        server = MariaDBServer(find_server())
        server.directory = directory
        server.stop()
    return found


if __name__ == "__main__":
    throwaway.main("mariadb_server.py", find_server, stop_leftovers)
