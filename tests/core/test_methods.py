"""The method registry: its commands are what the method packages' CLIs accept, its settings are
what the built models run with, and the bench, pipeline and comparison read it."""

from __future__ import annotations

import pytest

from baselines.__main__ import build_parser as baselines_parser
from slide_bench.cli import nest
from slide_bench.errors import ConfigError
from slide_bench.methods import COMPARISONS, METHODS, get_method, method_names
from slide_engine.__main__ import build_parser as engine_parser
from slide_engine.compare import METHODS as COMPARED
from slide_engine.mongoose import VARIANTS, mongoose_overrides

PARSERS = {"slide_engine": engine_parser, "baselines": baselines_parser}
RUN_FLAGS = ["--train", "a.npz", "--test", "b.npz", "--out", "c.csv"]


@pytest.mark.parametrize("name", list(METHODS))
def test_each_command_is_accepted_by_its_package_and_sets_its_flags(name: str) -> None:
    method = METHODS[name]
    python, dash_m, package, *argv = method.command
    assert (python, dash_m, package) == ("python", "-m", method.package)
    args = PARSERS[package]().parse_args([*argv, *RUN_FLAGS])
    assert args.command == "train"
    for key, value in method.flags.items():
        assert getattr(args, key) == value


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.package == "slide_engine"])
def test_a_slide_method_is_built_with_its_registry_settings(name: str) -> None:
    method = METHODS[name]
    model, config = method.plugin().build(nest(dict(method.overrides())), seed=3, threads=1)
    assert model.seed == 3 and model.threads == 1
    for dotted, value in method.settings.items():
        node = config
        for key in dotted.split("."):
            node = node[key]
        assert node == value, dotted
    # the curve name the engine derives from its schedule is the registry's name, except for
    # the hashing variants (same engine schedule, named by the registry for the bench)
    if "output.hash.schedule" in method.settings or name == "slide":
        assert model.method == name


def test_user_overrides_win_over_registry_settings() -> None:
    method = METHODS["slide-dwta"]
    _, config = method.plugin().build(nest({**method.overrides(), "output.hash.k": 4}), 0, 1)
    assert config["output"]["hash"]["family"] == "dwta"
    assert config["output"]["hash"]["k"] == 4


def test_lists_of_methods_elsewhere_are_derived_from_the_registry() -> None:
    assert COMPARED == COMPARISONS["mongoose"] == ("slide", *VARIANTS)
    assert set(method_names()) == set(METHODS)
    assert all(set(c) <= set(METHODS) for c in COMPARISONS.values())
    # the pipeline presets of the MONGOOSE methods are their registry settings as --set text
    assert mongoose_overrides("slide-mongoose", layer="hidden.0") == {
        "hidden.0.hash.schedule": "mongoose",
        "hidden.0.hash.mongoose.learn": "true",
        "hidden.0.hash.family": "simhash",
    }


def test_an_unknown_method_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown method 'slid'; choose from slide, "):
        get_method("slid")
    assert get_method("tf-full").device_for("gpu") == "gpu"
    assert get_method("slide").device_for("gpu") == "cpu"
    assert get_method("tf-sampled").takes_device and not get_method("slide").takes_device
