""".ci/summarize.py on the junit report this env's pytest really writes (pytest 4.6's format on
Python 2.7, 6+'s elsewhere): each failed or erring test is named with its env under the table,
so that CI's output alone says which test failed.  No Django here: the report comes from a
small test file run by a fresh pytest in a temporary directory."""
import os
import subprocess
import sys
import textwrap

import pytest

SUMMARIZE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         ".ci", "summarize.py")

SAMPLE = textwrap.dedent('''
    import pytest

    def test_passes():
        pass

    def test_fails():
        assert 1 == 2, "one is not two"

    @pytest.fixture
    def broken():
        raise RuntimeError("the fixture broke")

    def test_errors(broken):
        pass

    @pytest.mark.skip(reason="not here")
    def test_skipped():
        pass
''')


@pytest.fixture
def summarize():
    """Run .ci/summarize.py on the reports in a directory, as .ci/run does: return its exit
    code and the lines it printed."""
    if not os.path.isfile(SUMMARIZE):
        pytest.skip("no CI scripts beside these tests (.ci/summarize.py)")

    def run(reports, *envs):
        process = subprocess.Popen(
            [sys.executable, SUMMARIZE, "--reports", reports, "--tox-exit", "0"] + list(envs),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = process.communicate()[0].decode("utf-8", "replace")
        return process.returncode, out.splitlines()
    return run


def write_report(directory, body=SAMPLE, returncode=1):
    """Run ``body`` as a test file under this env's pytest; return its junit report's path."""
    sample = os.path.join(directory, "test_sample.py")
    with open(sample, "w") as handle:
        handle.write(body)
    report = os.path.join(directory, "env.xml")
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "--junitxml", report, sample],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=directory)
    out = process.communicate()[0].decode("utf-8", "replace")
    assert process.returncode == returncode and os.path.isfile(report), out
    return report


def test_each_failed_and_erring_test_is_named_with_its_env_and_message(summarize, tmpdir):
    os.rename(write_report(str(tmpdir)), str(tmpdir.join("py27-django13.xml")))
    code, lines = summarize(str(tmpdir), "py27-django13")
    named = [line for line in lines if line.startswith("failed: ")]
    assert code == 1
    assert lines[-1] == "1 passed, 2 failed, 1 skipped"
    assert len(named) == 2, lines
    fails = [line for line in named if "test_sample::test_fails: failure: " in line]
    errors = [line for line in named if "test_sample::test_errors: error: " in line]
    assert fails and errors, named
    assert all(line.startswith("failed: py27-django13: ") for line in named), named
    assert "one is not two" in fails[0], fails
    assert "RuntimeError: the fixture broke" in errors[0], errors


def test_a_green_env_names_no_test_and_many_failures_are_capped(summarize, tmpdir):
    many = "\n".join("def test_fails_%d():\n    assert False\n" % index for index in range(22))
    green = tmpdir.mkdir("green")
    red = tmpdir.mkdir("red")
    os.rename(write_report(str(red), many), str(tmpdir.join("red.xml")))
    os.rename(write_report(str(green), "def test_passes():\n    pass\n", returncode=0),
              str(tmpdir.join("green.xml")))
    code, lines = summarize(str(tmpdir), "green", "red")
    named = [line for line in lines if line.startswith("failed: ")]
    assert code == 1
    assert lines[-1] == "1 passed, 22 failed, 0 skipped", lines
    assert [line.split(": ")[1] for line in named] == ["red"] * 21, named
    assert named[-1].startswith("failed: red: 2 more not shown (in "), named


SKIPS = textwrap.dedent('''
    import pytest

    @pytest.mark.parametrize("n", range(3))
    def test_on_a_server(n):
        pytest.skip("no MariaDB server programs: apt-get install mariadb-server")

    @pytest.mark.skipif(True, reason="needs Django 1.7+")
    def test_new():
        pass

    def test_passes():
        pass
''')


def test_skips_are_grouped_by_reason_with_each_envs_count(tmpdir):
    first, second = tmpdir.mkdir("a"), tmpdir.mkdir("b")
    reports = {"py27-django13": write_report(str(first), SKIPS, returncode=0),
               "py313-django61": write_report(str(second), SKIPS.replace("needs Django 1.7+",
                                                                         "other"), returncode=0)}
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent('''
        import sys
        sys.path.insert(0, %r)
        import summarize
        reports = dict((env, summarize.parse_report(path)) for env, path in %r.items())
        grouped = summarize.skips_by_reason(reports)
        print("\\n".join(summarize.skip_reason_lines(grouped)))
        print("\\n".join(summarize.skip_reason_lines(grouped, shown=1)))
        ''' % (os.path.dirname(SUMMARIZE), reports))], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    lines = process.communicate()[0].decode("utf-8", "replace").splitlines()
    assert process.returncode == 0, lines
    assert lines == [
        "    6  no MariaDB server programs: apt-get install mariadb-server  "
        "[py27-django13 3, py313-django61 3]",
        "    1  needs Django 1.7+  [py27-django13]",
        "    1  other  [py313-django61]",
        "    6  no MariaDB server programs: apt-get install mariadb-server  "
        "[py27-django13 3, py313-django61 3]",
        "    2  skipped for 2 other reasons",
    ], lines
