"""Where using connections across threads is refused (sharing_cases.py, issue 25): the lines
that raise are exactly those marked ``# 1.4 raises``, on Django 1.4+ natively and on 1.2/1.3
with the backport, on sqlite and PostgreSQL. Observe mode must report exactly these sites."""
import inspect

import pytest

import sharing_cases
import support

MARK = "# 1.4 raises"
THREAD_MESSAGE = "can only be used in that same thread"


def marked_lines(case):
    lines, first = inspect.getsourcelines(case)
    return sorted(first + index for index, line in enumerate(lines) if MARK in line)


def test_the_cases_mark_sharing_and_leave_the_rest_unmarked():
    marked = dict((case.__name__, marked_lines(case)) for case in sharing_cases.CASES)
    assert [name for name, lines in marked.items() if lines]  # the test cannot pass empty
    assert [name for name, lines in marked.items() if not lines]


@support.parametrize_over_databases(kinds=("sqlite", "postgres"))
@pytest.mark.parametrize("case", sharing_cases.CASES, ids=lambda case: case.__name__)
def test_sharing_is_refused_exactly_where_django_1_4_refuses_it(case, aliases):
    from django.db import connections

    alias = aliases["master"]
    if case is sharing_cases.another_threads_transaction_ended and not hasattr(
            connections[alias], "commit"):
        pytest.skip("this Django's wrappers have no commit()/rollback(): transactions are "
                    "ended through django.db.transaction, which looks the thread's own up")
    raised = case(alias)
    messages = [str(error) for error, _ in raised]
    assert all(THREAD_MESSAGE in message for message in messages), messages
    assert sorted(line for _, line in raised) == marked_lines(case), (
        "refused at lines %s, Django 1.4 refuses at %s: %s" % (
            sorted(line for _, line in raised), marked_lines(case), messages))
