"""What the project's two commands need before tox can run: the envs of tox.ini, an interpreter
for each, the system packages their deps build against, and a venv of tools (tox<4,
virtualenv<20.22) of their own.

Nothing here depends on ``PYENV_VERSION`` or on what the shell exported: each ``pythonX.Y`` is
looked for in pyenv's versions (``$PYENV_ROOT/versions/X.Y.Z/bin``, by default
``~/.pyenv/versions``), then on ``PATH``, and only one that runs and says it is X.Y counts (a
pyenv shim of a version not selected does not). tox is handed the interpreters found through
``TOX_DISCOVER``, so that it never looks for them itself. Python 3 only: this runs outside the
envs, never inside one.
"""
import configparser
import glob
import hashlib
import io
import itertools
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOLS_VENV = os.path.join(ROOT, ".ci", ".venv")
TOOLS_REQUIREMENTS = os.path.join(ROOT, "requirements", "tox.txt")
STAMP = "connlocal-shim-tools.sha256"
PYTHON_FACTOR = re.compile(r"^py(\d)(\d+)$")
MATRIX_ENV = re.compile(r"^py\d+-django\d+$")  # one env per Django release: the main job's
VERSION_QUERY = "import sys; print('%d.%d' % sys.version_info[:2])"


class ToolError(Exception):
    """Something the commands need is missing or broken; the message says what to do."""


# -- tox.ini ---------------------------------------------------------------------------------------

def expand_braces(name):
    """'py27-django{12,13}' -> ['py27-django12', 'py27-django13'] (tox's generative names)."""
    parts = re.split(r"(\{[^{}]*\})", name)
    choices = [part[1:-1].split(",") if part.startswith("{") else [part] for part in parts]
    return ["".join(option.strip() for option in combination)
            for combination in itertools.product(*choices)]


def split_envlist(text):
    """tox's envlist value: names separated by commas (outside braces) or newlines."""
    names = []
    for line in text.splitlines():
        for name in re.split(r",(?![^{]*\})", line):
            name = name.strip()
            if name and not name.startswith("#"):
                names.extend(expand_braces(name))
    return names


def read_tox_ini(root=ROOT):
    parser = configparser.ConfigParser(interpolation=None)
    path = os.path.join(root, "tox.ini")
    if not parser.read(path):
        raise ToolError("no tox.ini in %s" % root)
    return parser


def tox_envs(root=ROOT):
    """(envlist, every env tox.ini names: the envlist, then those of [testenv:NAME] sections)."""
    parser = read_tox_ini(root)
    envlist = split_envlist(parser.get("tox", "envlist", fallback=""))
    named = [section.split(":", 1)[1] for section in parser.sections()
             if section.startswith("testenv:")]
    return envlist, envlist + [name for name in named if name not in envlist]


def select_envs(requested, root=ROOT):
    """The envs to run: the envlist, or those requested (each must be one tox.ini names)."""
    envlist, known = tox_envs(root)
    if not requested:
        return envlist
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise ToolError("not an env of tox.ini: %s (its envs: %s)" % (
            ", ".join(unknown), ", ".join(known)))
    return list(requested)


def python_version_of(env, root=ROOT, parser=None):
    """'X.Y' of the interpreter an env needs: its pyXY factor, else its basepython."""
    for factor in env.split("-"):
        match = PYTHON_FACTOR.match(factor)
        if match:
            return "%s.%s" % match.groups()
    parser = parser or read_tox_ini(root)
    basepython = parser.get("testenv:" + env, "basepython", fallback="") or \
        parser.get("testenv", "basepython", fallback="")
    match = re.match(r"^python(\d+\.\d+)$", basepython.strip())
    if not match:
        raise ToolError("tox.ini: env %s has no pyXY factor and no basepython = pythonX.Y" % env)
    return match.group(1)


# -- interpreters ----------------------------------------------------------------------------------

def pyenv_root(environ=None):
    environ = os.environ if environ is None else environ
    return environ.get("PYENV_ROOT") or os.path.join(os.path.expanduser("~"), ".pyenv")


def version_key(directory_name):
    return [int(part) for part in directory_name.split(".")]


def reports_version(executable, version):
    """Whether ``executable`` runs and is Python ``version`` ('X.Y')."""
    return reports_own_version(executable) == version


def clean_environ():
    """os.environ without what would make an interpreter other than itself (a venv's, a
    PYTHONHOME, a PYTHONPATH)."""
    environ = dict(os.environ)
    for name in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__"):
        environ.pop(name, None)
    return environ


def interpreter_candidates(version, environ=None):
    """Where pythonX.Y may be: pyenv's versions X.Y.Z (newest first), then each PATH entry."""
    environ = os.environ if environ is None else environ
    name = "python" + version
    candidates = []
    versions = os.path.join(pyenv_root(environ), "versions")
    found = [path for path in glob.glob(os.path.join(versions, version + "*"))
             if re.match(r"^%s(\.\d+)?$" % re.escape(version), os.path.basename(path))]
    for directory in sorted(found, key=lambda path: version_key(os.path.basename(path)),
                            reverse=True):
        candidates.append(os.path.join(directory, "bin", name))
    for directory in environ.get("PATH", "").split(os.pathsep):
        if directory:
            candidates.append(os.path.join(directory, name))
    return candidates


def find_interpreter(version, environ=None):
    """The first candidate that runs and is Python ``version``, or None."""
    for candidate in interpreter_candidates(version, environ):
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and \
                reports_version(candidate, version):
            return candidate
    return None


def how_to_get(version, environ=None):
    if os.path.isdir(os.path.join(pyenv_root(environ), "versions")):
        return "pyenv install %s (pyenv picks the newest %s.x), or put python%s on PATH" % (
            version, version, version)
    return ("install Python %s (pyenv install %s, or your system's package of python%s) and "
            "put python%s on PATH" % (version, version, version, version))


def interpreters_for(envs, environ=None, root=ROOT):
    """{'X.Y': path} for every env, or ToolError naming each missing interpreter, the envs that
    need it and how to get it: before anything is built."""
    parser = read_tox_ini(root)
    needed = {}
    for env in envs:
        needed.setdefault(python_version_of(env, root, parser), []).append(env)
    found, missing = {}, []
    for version in sorted(needed, key=version_key):
        path = find_interpreter(version, environ)
        if path:
            found[version] = path
        else:
            envs_of = needed[version]
            missing.append("python%s (for %s%s): not in %s nor on PATH; %s" % (
                version, ", ".join(envs_of[:4]), ", ..." if len(envs_of) > 4 else "",
                os.path.join(pyenv_root(environ), "versions", version + ".*", "bin"),
                how_to_get(version, environ)))
    if missing:
        raise ToolError("missing interpreter%s:\n  %s" % (
            "s" if len(missing) > 1 else "", "\n  ".join(missing)))
    return found


# -- system packages -------------------------------------------------------------------------------
# What the envs' deps compile against is needed while tox builds them: a missing one is named,
# with the package to install, before anything is built (pip would fail minutes later, its cause
# deep in a build log). The servers the tests start for themselves are needed only while tests
# run: without one its tests are skipped, saying why, unless CONNLOCAL_SHIM_REQUIRE_* asks
# (docs/testing.rst).

# "py27,py36: mysqlclient==1.4.6", "!django12-!django13: ...": tox 3's factor conditions.
FACTOR_CONDITION = re.compile(r"^(!?[\w.]+(?:[-,]!?[\w.]+)*):\s+(\S.*)$")
SECTION_REFERENCE = re.compile(r"^\{\[([^\]]+)\]([\w-]+)\}$")
REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$")
# The pkg-config names mysqlclient 2.2+ looks for (its setup.py, find_package_name()).
MYSQLCLIENT_PKG_CONFIG_NAMES = ("mysqlclient", "mariadb", "libmariadb", "perconaserverclient")


def factors_match(condition, env):
    """Whether tox's factor condition (alternatives split by ',', factors of one by '-', '!'
    negating) holds for ``env``."""
    factors = set(env.split("-"))
    for alternative in condition.split(","):
        if all((part[1:] not in factors) if part.startswith("!") else (part in factors)
               for part in alternative.split("-")):
            return True
    return False


def env_deps(env, parser):
    """The requirements tox installs into ``env``: its section's deps (else [testenv]'s), with
    {[section]key} references expanded and factor conditions applied, as {lowercase name:
    specifier}: {"mysqlclient": ">=2.2,<2.4", ...}."""
    section = "testenv:" + env
    raw = parser.get(section, "deps", fallback=None) if parser.has_section(section) else None
    if raw is None:
        raw = parser.get("testenv", "deps", fallback="")
    lines = []
    for line in raw.splitlines():
        line = line.strip()
        reference = SECTION_REFERENCE.match(line)
        if reference:
            lines.extend(parser.get(reference.group(1), reference.group(2),
                                    fallback="").splitlines())
        else:
            lines.append(line)
    deps = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        conditional = FACTOR_CONDITION.match(line)
        if conditional:
            if not factors_match(conditional.group(1), env):
                continue
            line = conditional.group(2).strip()
        named = REQUIREMENT_NAME.match(line)
        if named and not line.startswith("-"):
            deps[named.group(1).lower().replace("_", "-")] = named.group(2).strip()
    return deps


def first_version(specifier):
    """(2, 2) of '>=2.2,<2.4', (1, 4) of '==1.4.6'; None if there is no version."""
    match = re.search(r"(\d+)\.(\d+)", specifier)
    return (int(match.group(1)), int(match.group(2))) if match else None


def which(program, environ=None):
    environ = os.environ if environ is None else environ
    for directory in environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, program)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def has_c_compiler(environ):
    return any(which(name, environ) for name in (environ.get("CC") or "cc", "gcc"))


def has_mysql_config(environ):
    # mysqlclient up to 2.1 runs mysql_config, or mariadb_config when there is none.
    return bool(which("mysql_config", environ) or which("mariadb_config", environ))


def has_mysqlclient_pkg_config(environ):
    # mysqlclient 2.2+ asks pkg-config, unless both flags are given by hand.
    if environ.get("MYSQLCLIENT_CFLAGS") and environ.get("MYSQLCLIENT_LDFLAGS"):
        return True
    pkg_config = which("pkg-config", environ)
    if not pkg_config:
        return False
    for name in MYSQLCLIENT_PKG_CONFIG_NAMES:
        try:
            if subprocess.run([pkg_config, "--exists", name], env=environ,
                              timeout=60).returncode == 0:
                return True
        except (OSError, subprocess.TimeoutExpired):
            return False
    return False


# (what is missing, Debian's packages, the probe, which deps need it).
BUILD_REQUIREMENTS = (
    ("a C compiler (cc or gcc on PATH)", "build-essential", has_c_compiler,
     lambda deps: "mysqlclient" in deps or "uwsgi" in deps or "mod_wsgi" in deps),
    ("apxs on PATH (Apache's headers and module builder, for mod_wsgi)", "apache2-dev",
     lambda environ: bool(which(environ.get("APXS") or "apxs", environ)),
     lambda deps: "mod_wsgi" in deps),
    ("mysql_config or mariadb_config on PATH (MariaDB Connector/C, for mysqlclient)",
     "libmariadb-dev-compat", has_mysql_config,
     lambda deps: "mysqlclient" in deps),
    ("pkg-config, knowing MariaDB Connector/C as mariadb or mysqlclient (for mysqlclient "
     "2.2+)", "pkg-config libmariadb-dev-compat",
     has_mysqlclient_pkg_config,
     lambda deps: (first_version(deps.get("mysqlclient", "")) or (0, 0)) >= (2, 2)),
)


def missing_build_packages(envs, environ=None, root=ROOT):
    """[(what, packages, [envs])] for each system package that building ``envs`` needs and that
    is not here."""
    environ = os.environ if environ is None else environ
    parser = read_tox_ini(root)
    needing = {}
    for env in envs:
        deps = env_deps(env, parser)
        for requirement in BUILD_REQUIREMENTS:
            if requirement[3](deps):
                needing.setdefault(requirement, []).append(env)
    missing = []
    for requirement in BUILD_REQUIREMENTS:
        if requirement in needing and not requirement[2](environ):
            missing.append((requirement[0], requirement[1], needing[requirement]))
    return missing


def describe_missing_build_packages(missing):
    packages = []
    for _, names, _ in missing:
        packages.extend(name for name in names.split() if name not in packages)
    lines = ["%s, for %s%s: apt-get install %s" % (
        what, ", ".join(envs[:4]), ", ..." if len(envs) > 4 else "", names)
        for what, names, envs in missing]
    return ("missing system package%s, needed to build the envs (Debian/Ubuntu names; "
            "elsewhere, your system's packages of the same):\n  %s\n"
            "all at once: apt-get install %s" % (
                "s" if len(lines) > 1 else "", "\n  ".join(lines), " ".join(packages)))


def has_geos(environ):
    import ctypes.util

    return ctypes.util.find_library("geos_c") is not None


def has_apache(environ):
    """Apache's server program, where mod_wsgi's build finds it (apxs -q SBINDIR, PROGNAME)."""
    apxs = which(environ.get("APXS") or "apxs", environ)
    if not apxs:
        return False
    try:
        found = [subprocess.run([apxs, "-q", name], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, timeout=60, check=True)
                 .stdout.decode().strip() for name in ("SBINDIR", "PROGNAME")]
    except (OSError, subprocess.SubprocessError):
        return False
    return os.access(os.path.join(*found), os.X_OK)


def server_helper_finds(script, root):
    """A probe running ``tests/SCRIPT find-server`` (the helpers the tests start servers with,
    as .ci/run asks them)."""
    def probe(environ):
        path = os.path.join(root, "tests", script)
        if not os.path.isfile(path):
            return True  # no tests here to start it for
        try:
            return subprocess.run([sys.executable, path, "find-server"], env=environ,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
    return probe


def test_time_services(root):
    """(what, Debian's package, its REQUIRE variable, the probe, which deps need it)."""
    return (
        ("the GEOS C library (the GIS backends' tests)", "libgeos-c1v5",
         "CONNLOCAL_SHIM_REQUIRE_BACKENDS", has_geos, lambda deps: "pytest" in deps),
        ("a PostgreSQL server (initdb, pg_ctl)", "postgresql", "CONNLOCAL_SHIM_REQUIRE_POSTGRES",
         server_helper_finds("pg_cluster.py", root), lambda deps: "psycopg2-binary" in deps),
        ("a MariaDB server (mariadb-install-db, mariadbd)", "mariadb-server",
         "CONNLOCAL_SHIM_REQUIRE_MYSQL", server_helper_finds("mariadb_server.py", root),
         lambda deps: "mysqlclient" in deps),
        ("PgBouncer", "pgbouncer", "CONNLOCAL_SHIM_REQUIRE_PGBOUNCER",
         server_helper_finds("pgbouncer.py", root),
         lambda deps: "psycopg2-binary" in deps and "pytest" in deps),
        ("Apache httpd (apache2, for mod_wsgi)", "apache2", "CONNLOCAL_SHIM_REQUIRE_APACHE",
         has_apache, lambda deps: "mod_wsgi" in deps),
    )


def missing_test_services(envs, environ=None, root=ROOT):
    """(notes, required): a note for each test-time server or library that ``envs`` would use
    and that is not here (its tests will be skipped), and the same for those a
    CONNLOCAL_SHIM_REQUIRE_* variable of ``environ`` makes a failure instead."""
    environ = os.environ if environ is None else environ
    parser = read_tox_ini(root)
    deps_of = [env_deps(env, parser) for env in envs]
    notes, required = [], []
    for what, package, variable, probe, needed_by in test_time_services(root):
        if not any(needed_by(deps) for deps in deps_of) or probe(environ):
            continue
        line = "not found: %s (apt-get install %s)" % (what, package)
        if environ.get(variable) == "1":
            required.append("%s, and %s=1" % (line, variable))
        else:
            notes.append("%s; its tests will be skipped, saying why (%s=1 makes that a "
                         "failure)" % (line, variable))
    return notes, required


# -- the tools venv --------------------------------------------------------------------------------

def requirements_digest(path=TOOLS_REQUIREMENTS):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def tools_venv(say, venv=TOOLS_VENV, requirements=TOOLS_REQUIREMENTS, python=None):
    """The venv of tox<4 and virtualenv<20.22 (made with this Python, never pip-installing into
    it: Debian's python3 is externally managed); returns its bin directory. Kept between runs,
    re-installed when requirements/tox.txt changes."""
    python = python or sys.executable
    if sys.version_info < (3, 7):
        raise ToolError("run this with Python 3.7 or later (virtualenv<20.22 needs it); this is "
                        "%s" % sys.version.split()[0])
    bin_directory = os.path.join(venv, "bin")
    venv_python = os.path.join(bin_directory, "python")
    stamp = os.path.join(venv, STAMP)
    digest = requirements_digest(requirements)
    if os.path.exists(venv_python) and reports_own_version(venv_python) is None:
        say("the tools venv %s is broken (its python does not run): making it again"
            % os.path.relpath(venv, ROOT))
        remove_tree(venv)
    if not os.path.exists(venv_python):
        say("making the tools venv %s with %s" % (os.path.relpath(venv, ROOT), python))
        run_checked([python, "-m", "venv", venv],
                    "making a venv failed (on Debian: apt-get install python3-venv)")
    current = None
    if os.path.exists(stamp):
        with io.open(stamp, encoding="ascii") as handle:
            current = handle.read().strip()
    if current != digest:
        say("installing %s into it" % os.path.relpath(requirements, ROOT))
        run_checked([venv_python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                     "-r", requirements], "installing the tools failed")
        with io.open(stamp, "w", encoding="ascii") as handle:
            handle.write(digest + "\n")
    return bin_directory


def reports_own_version(executable):
    """'X.Y' of ``executable``, or None if it does not run."""
    try:
        output = subprocess.run([executable, "-c", VERSION_QUERY], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, timeout=60, env=clean_environ())
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = output.stdout.decode("ascii", "replace").strip()
    return version if output.returncode == 0 and re.match(r"^\d+\.\d+$", version) else None


def remove_tree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def run_checked(command, failure):
    process = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=clean_environ())
    if process.returncode != 0:
        raise ToolError("%s: %s exited %s:\n%s" % (
            failure, " ".join(command), process.returncode,
            process.stdout.decode("utf-8", "replace")[-3000:]))


def tox_environment(bin_directory, interpreters):
    """os.environ for tox: its tools first on PATH, the interpreters found handed over through
    TOX_DISCOVER, what tox.ini says decides the envs (no TOXENV), and new envs seeded with the
    pip, setuptools and wheel virtualenv embeds for each Python (a newer pip that its periodic
    update fetched need not support the env's Python: pip 26 broke every new Python 3.7 env)."""
    environ = clean_environ()
    for name in ("TOXENV", "TOX_SKIP_ENV", "DJANGO_SETTINGS_MODULE"):
        environ.pop(name, None)
    environ["PATH"] = os.pathsep.join([bin_directory, environ.get("PATH", "")])
    environ["TOX_DISCOVER"] = os.pathsep.join(interpreters[version] for version in
                                              sorted(interpreters, key=version_key))
    environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    environ["TOX_PARALLEL_NO_SPINNER"] = "1"
    environ["VIRTUALENV_NO_PERIODIC_UPDATE"] = "1"
    for seed in ("PIP", "SETUPTOOLS", "WHEEL"):
        environ["VIRTUALENV_" + seed] = "embed"
    return environ


def prepare(envs, say, root=ROOT, servers=False):
    """Interpreters and the system packages the envs build against first (anything missing
    stops everything, naming all of it, before anything is built), then the tools venv; returns
    (tox executable, environment for tox). ``servers``: also say which test-time servers are
    missing (the test command), failing where a CONNLOCAL_SHIM_REQUIRE_* variable asks."""
    problems = []
    try:
        interpreters = interpreters_for(envs, root=root)
    except ToolError as error:
        problems.append(str(error))
    missing = missing_build_packages(envs, root=root)
    if missing:
        problems.append(describe_missing_build_packages(missing))
    if servers:
        notes, required = missing_test_services(envs, root=root)
        for note in notes:
            say(note)
        if required:
            problems.append("missing servers that CONNLOCAL_SHIM_REQUIRE_* requires:\n  %s"
                            % "\n  ".join(required))
    if problems:
        raise ToolError("\n".join(problems))
    say("interpreters: %s" % ", ".join("%s %s" % (version, interpreters[version])
                                       for version in sorted(interpreters, key=version_key)))
    bin_directory = tools_venv(say)
    return os.path.join(bin_directory, "tox"), tox_environment(bin_directory, interpreters)
