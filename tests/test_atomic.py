"""others_paused() and paused_between_calls() (atomic.py), with real threads."""
import threading

from connlocal_shim.atomic import calls_under_way, paused_between_calls

import support


class Inside(object):
    """A thread that runs ``inside()`` until ``release()``; ``now`` says whether it is past the
    first line of ``inside()`` and not yet at its last."""

    def __init__(self):
        self.now = False
        self.entered = threading.Event()
        self.proceed = threading.Event()
        self.thread = threading.Thread(target=self.inside, name="held-inside")
        self.thread.daemon = True

    def inside(self):
        self.now = True
        self.entered.set()
        self.proceed.wait(30)
        self.now = False

    def __enter__(self):
        self.thread.start()
        assert self.entered.wait(30)
        return self

    def __exit__(self, *exc_info):
        self.proceed.set()
        self.thread.join(30)


def test_the_block_runs_once_the_other_thread_has_left_the_code():
    codes = set([Inside.inside.__code__])
    with Inside() as held:
        def paused():
            with paused_between_calls(codes, 30) as under_way:
                return held.now, under_way

        changer = support.ThreadResult(paused)
        changer.thread.join(0.3)
        assert changer.thread.is_alive(), "the block ran while a thread was inside the code"
        held.proceed.set()
        assert changer.result(30) == (False, [])


def test_after_the_timeout_the_block_runs_and_names_who_is_still_inside():
    codes = set([Inside.inside.__code__])
    with Inside() as held:
        with paused_between_calls(codes, 0.1) as under_way:
            still = held.now
        assert still is True
        assert len(under_way) == 1
        name, where = under_way[0]
        assert name == "held-inside"
        assert where.endswith(" in inside") and "test_atomic.py:" in where


def test_the_calling_thread_and_other_code_do_not_count():
    codes = set([test_the_calling_thread_and_other_code_do_not_count.__code__])
    assert calls_under_way(codes) == []  # only this thread runs it
    with Inside():
        assert calls_under_way(set([Inside.__enter__.__code__])) == []
        assert [name for name, _ in calls_under_way(set([Inside.inside.__code__]))] == [
            "held-inside"
        ]


class Refusing(object):
    def __contains__(self, code):
        raise RuntimeError("refused")


def test_an_error_while_looking_leaves_the_others_running():
    import sys

    def interval():
        return sys.getcheckinterval() if sys.version_info[0] == 2 else sys.getswitchinterval()

    before = interval()
    with Inside():
        try:
            with paused_between_calls(Refusing(), 30):
                raise AssertionError("the block ran")
        except RuntimeError as error:
            assert str(error) == "refused"
    assert interval() == before
