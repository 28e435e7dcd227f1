"""The plugin registry: conda-style descriptors, forgiving loading, no install-order effects."""

from __future__ import annotations

import pytest

from fk.components import Component, Port
from fk.errors import PluginError
from fk.hookspecs import hookimpl
from fk.testing import isolated_plugin_manager


def _detector_plugin(plugin_name: str, component_name: str):
    class P:
        __name__ = plugin_name

        @hookimpl
        def fk_detect(self):
            yield Component("detect", component_name, f"from {plugin_name}", dict,
                            inputs=(Port("image", "image"),), outputs=(Port("faces", "faces"),))

    return P()


def test_components_do_not_depend_on_registration_order():
    a, b = _detector_plugin("pa", "zeta"), _detector_plugin("pb", "alpha")
    with isolated_plugin_manager(a, b) as pm:
        first = list(pm.components)
    with isolated_plugin_manager(b, a) as pm:
        second = list(pm.components)
    assert first == second == sorted(first)


def test_conflicting_names_name_both_distributions():
    with isolated_plugin_manager(_detector_plugin("pa", "same"), _detector_plugin("pb", "same"),
                                 _detector_plugin("pc", "other")) as pm:
        pm._info["pa"].distribution, pm._info["pb"].distribution = "dist-a", "dist-b"
        # the registry still works: only the conflicting name is unusable, and says why
        assert "detect:other" in pm.components and "detect:same" not in pm.components
        assert pm.conflicts == {"detect:same": ["dist-a", "dist-b"]}
        with pytest.raises(PluginError, match="'detect:same' is provided by dist-a and dist-b"):
            pm.component("detect:same")


def test_a_plugin_whose_hook_raises_is_isolated_and_reported():
    class Broken:
        __name__ = "broken"

        @hookimpl
        def fk_detect(self):
            raise RuntimeError("model folder missing")

    with isolated_plugin_manager(Broken(), _detector_plugin("ok", "fine")) as pm:
        assert "detect:fine" in pm.components
        assert [(b.name, b.error) for b in pm.broken] == [("broken", "RuntimeError: model folder missing")]


def test_a_plugin_with_a_bad_hook_signature_is_reported_not_fatal():
    class BadSignature:
        __name__ = "badsig"

        @hookimpl
        def fk_detect(self, unexpected_argument):
            yield from ()

    with isolated_plugin_manager(BadSignature()) as pm:
        assert [b.name for b in pm.broken] == ["badsig"]


def test_component_descriptor_validates_itself():
    with pytest.raises(ValueError, match="stage must be one of"):
        Component("detekt", "x", "", dict)
    with pytest.raises(ValueError, match="lower-case"):
        Component("detect", "Bad Name", "", dict)
    with pytest.raises(ValueError, match="fan_out"):
        Component("detect", "x", "", dict, fan_out="faces")


def test_unknown_component_suggests_close_names():
    from fk.errors import MissingError

    with isolated_plugin_manager(_detector_plugin("pa", "dlib68")) as pm, \
            pytest.raises(MissingError, match="did you mean 'detect:dlib68'"):
        pm.component("detect:dlib6")
