"""The registry restores exactly what it replaced, and only what is still its own."""

import pytest

from connlocal_shim.registry import ABSENT, AttributePatch, Registry


class Base(object):
    inherited = "from Base"


class Child(Base):
    own = "from Child"


replacement = object()  # not a function: Python 2 would hand back an unbound method


def test_the_original_is_read_from_the_target_itself_not_its_bases():
    patch = AttributePatch(Child, "inherited", replacement, "Child", "test")
    assert patch.original is ABSENT
    patch.apply()
    assert Child.inherited is replacement
    patch.revert()
    assert "inherited" not in vars(Child) and Child.inherited == "from Base"


def test_revert_restores_the_very_same_object():
    original = vars(Child)["own"]
    patch = AttributePatch(Child, "own", replacement, "Child", "test")
    patch.apply()
    assert patch.is_ours()
    patch.revert()
    assert vars(Child)["own"] is original


def test_revert_leaves_a_later_patch_of_someone_else_and_says_so():
    patch = AttributePatch(Child, "own", replacement, "Child", "test")
    patch.apply()
    theirs = object()
    Child.own = theirs
    try:
        registry = Registry()
        registry.records.append(patch)
        messages = registry.revert_all()  # uninstall() gives them as ConnlocalShimWarnings
        assert Child.own is theirs
        assert len(messages) == 1 and "Child.own" in messages[0]
        assert "replaced by someone else" in messages[0]
    finally:
        Child.own = "from Child"


def test_apply_all_is_all_or_nothing():
    class Target(object):
        first = "first"

    class Failing(AttributePatch):
        def apply(self):
            raise RuntimeError("cannot patch")

    registry = Registry()
    first = vars(Target)["first"]
    with pytest.raises(RuntimeError):
        registry.apply_all([
            AttributePatch(Target, "first", replacement, "Target", "test"),
            AttributePatch(Target, "second", replacement, "Target", "test"),
            Failing(Target, "third", replacement, "Target", "test"),
        ])
    assert vars(Target)["first"] is first and "second" not in vars(Target)
    assert len(registry) == 0
