"""The README's runnable example runs, and says what the README says it says."""
import os
import sys

import support

EXAMPLE = os.path.join(os.path.dirname(support.HERE), "examples", "routing_demo.py")
EXPECTED = [
    "write_note ran on: master",
    "meanwhile another thread used: default",
    "master has 1 note(s), default has 0",
    "after the rollback: audit rows: refund requested; notes: 0",
    "the other thread counted 1 audit row(s) through our connection",
]


def test_the_routing_demo_runs_on_this_django():
    with open(EXAMPLE) as handle:
        code = handle.read()
    out, err, _ = support.run_python(code)
    assert out.splitlines() == EXPECTED, err
    assert "Traceback" not in err
