"""python3 -m compat_matrix: the main job (runner.py); with --tests, the test command
(tests_command.py)."""
import sys


def main(argv):
    options = argv[:argv.index("--")] if "--" in argv else argv
    if "--tests" in options:
        from compat_matrix.tests_command import main as tests_main

        argv = list(argv)
        argv.remove("--tests")
        return tests_main(argv)
    from compat_matrix.runner import main as runner_main

    return runner_main(argv)


sys.exit(main(sys.argv[1:]))
