"""What a rebuilt class carries over from its original is made to name the rebuilt classes
(carryover.py): functions with closures and defaults, unbound methods, descriptors, wrappers."""
import functools
import sys

import pytest
import wrapt

from connlocal_shim.carryover import Translator


class Original(object):
    def method(self):
        return "original method"


class Rebuilt(object):
    def method(self):
        return "rebuilt method"


def translate(value):
    return Translator({Original: Rebuilt}.get)(value)


def test_a_class_reference_is_mapped_and_anything_else_is_left_alone():
    marker = object()
    assert translate(Original) is Rebuilt
    assert translate(marker) is marker
    assert translate((Original, 1)) == (Rebuilt, 1)
    items = [Original]
    assert translate(items) is items, "mutable containers are shared state: never copied"


def test_a_closure_and_a_default_naming_the_original_are_copied_naming_the_rebuilt():
    def make():
        cls = Original

        def uses(kind=Original):
            return cls, kind

        return uses

    uses = make()
    copied = translate(uses)
    assert copied is not uses and copied() == (Rebuilt, Rebuilt)
    assert uses() == (Original, Original), "the original function is left as it was"
    assert copied.__name__ == uses.__name__ and copied.__module__ == uses.__module__


def test_a_function_that_names_nothing_to_map_is_the_same_object():
    def plain(x=1):
        return x

    assert translate(plain) is plain


@pytest.mark.skipif(sys.version_info[0] > 2, reason="unbound methods exist on Python 2 only")
def test_an_unbound_method_of_the_original_becomes_one_of_the_rebuilt_class():
    unbound = Original.method
    copied = translate(unbound)
    assert copied.im_class is Rebuilt
    assert copied(Rebuilt()) == "original method"


def test_descriptors_partials_and_wrapt_wrappers_are_copied_around_what_they_hold():
    # (A module global naming a class is not the translator's: install() rebinds those.)
    cls = Original

    def returns_original(*args):
        return cls

    for value in (classmethod(returns_original), staticmethod(returns_original)):
        copied = translate(value)
        assert type(copied) is type(value) and copied.__func__() is Rebuilt
    prop = translate(property(returns_original))
    assert prop.fget(None) is Rebuilt
    partial = translate(functools.partial(returns_original, Original))
    assert partial.args == (Rebuilt,)
    wrapper = translate(wrapt.FunctionWrapper(returns_original, lambda w, i, a, k: (w(), cls)))
    assert type(wrapper) is wrapt.FunctionWrapper and wrapper() == (Rebuilt, Rebuilt)
