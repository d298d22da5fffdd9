"""The method registry: every method of the suite by name, the one place that names the plug-ins.

A method is an engine (a method package's plug-in module) plus the settings that make it this
method, and the command line that trains it. The pipeline (``workflow/rules/common.smk``: the
engines a config may name and their commands), the bench (:mod:`slide_bench.bench`) and the
MONGOOSE comparison (``python -m slide_engine.mongoose compare``) all read this table; every list
of method names elsewhere is derived from it.

The core never imports a method package: a plug-in is named by its module path and imported
only when a method is built (:meth:`Method.plugin`). A plug-in module offers

``build(tree, seed, threads, device) -> (model, config_dict)``
    the method's :class:`~slide_bench.harness.Trainable` from a nested config mapping (the
    method's settings and the user's overrides), and its config as a plain dict;
``check_device(device) -> None``
    raises :class:`~slide_bench.errors.GPUUnavailableError` (exit 3) when the device is missing;
``bench_extras(model, stats, n_timed, batch_size) -> dict`` (optional)
    method-specific bench columns (SLIDE: phase profile, active sets, memory traffic);
``use_cpu_phase_clock() -> None`` (optional)
    switch the engine's phase timers to the process CPU clock (``--phase-clock cpu``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

from slide_bench.errors import ConfigError

__all__ = ["COMPARISONS", "METHODS", "Method", "get_method", "method_names"]


@dataclass(frozen=True)
class Method:
    """One method of the suite.

    Parameters
    ----------
    name : str
        Its name (curve files, legends, ``--methods`` lists, the pipeline's ``engine:``).
    package : str
        The method package that trains it: ``python -m <package> train``.
    plugin : str
        Module path of the package's plug-in (see the module docstring).
    family : {"slide", "tf"}
        Which override flags of the bench apply (``--set`` or ``--tf-set``).
    flags : mapping of str to str
        Settings the method fixes through its CLI flags (``--model full``): part of its command
        and of its config.
    settings : mapping of str to object
        Further config overrides (dotted keys, as ``--set``) on top of the engine's defaults.
    devices : tuple of str
        Devices it can run on (SLIDE: the CPU only).
    summary : str
        One line for listings.
    """

    name: str
    package: str
    plugin_module: str
    family: str
    flags: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ("cpu",)
    summary: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", MappingProxyType(dict(self.flags)))
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    @property
    def command(self) -> tuple[str, ...]:
        """The command line that trains it (without data, run flags or overrides)."""
        argv = ["python", "-m", self.package, "train"]
        for key, value in self.flags.items():
            argv += [f"--{key}", value]
        return tuple(argv)

    @property
    def takes_device(self) -> bool:
        """Whether its command takes ``--device`` (a method that can run on a GPU)."""
        return "gpu" in self.devices

    def overrides(self) -> dict[str, Any]:
        """Its flags and settings as one mapping of dotted config keys."""
        return {**self.flags, **self.settings}

    def plugin(self) -> ModuleType:
        """Import and return the method package's plug-in module."""
        return importlib.import_module(self.plugin_module)

    def device_for(self, device: str) -> str:
        """The device it runs on when ``device`` is asked for (the CPU if it has no other)."""
        return device if device in self.devices else "cpu"


_DWTA_AMAZON = {
    "output.hash.family": "dwta",
    "output.hash.k": 6,
    "output.hash.l": 50,
    "output.hash.n_buckets": 262144,
}

_ALL = (
    Method("slide", "slide_engine", "slide_engine.method", "slide",
           summary="SLIDE with the engine's default settings"),
    Method("slide-dwta", "slide_engine", "slide_engine.method", "slide", settings=_DWTA_AMAZON,
           summary="SLIDE with the shipped Amazon-670K hashing (DWTA K=6, L=50, 2^18 buckets)"),
    Method("slide-dwta-ref", "slide_engine", "slide_engine.method", "slide",
           settings={**_DWTA_AMAZON, "output.hash.packing": "reference-overlap-2bit"},
           summary="the same with the reference code's 2-bit-shift code packing (the "
           "configuration of the reference C++ figure)"),
    Method("slide-mongoose-scheduler", "slide_engine", "slide_engine.method", "slide",
           settings={"output.hash.schedule": "mongoose", "output.hash.mongoose.learn": False},
           summary="SLIDE with MONGOOSE's drift-triggered rebuilds on the output layer"),
    Method("slide-mongoose", "slide_engine", "slide_engine.method", "slide",
           settings={"output.hash.schedule": "mongoose", "output.hash.mongoose.learn": True,
                     "output.hash.family": "simhash"},
           summary="the same plus MONGOOSE's learnable SimHash"),
    Method("tf-full", "baselines", "baselines.method", "tf", flags={"model": "full"},
           devices=("cpu", "gpu"), summary="TensorFlow full softmax"),
    Method("tf-sampled", "baselines", "baselines.method", "tf", flags={"model": "sampled"},
           devices=("cpu", "gpu"), summary="TensorFlow sampled softmax"),
)

#: Every method by name, in the order listings show them.
METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in _ALL})

#: Named selections of methods that are compared together.
COMPARISONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    # the paper's comparison: the pipeline's default methods and the bench's default set
    "paper": ("slide", "tf-full", "tf-sampled"),
    # fixed-schedule SLIDE against MONGOOSE (python -m slide_engine.mongoose compare)
    "mongoose": ("slide", "slide-mongoose-scheduler", "slide-mongoose"),
})


def method_names(comparison: str | None = None) -> tuple[str, ...]:
    """Names of every method, or of one comparison of :data:`COMPARISONS`."""
    return tuple(METHODS) if comparison is None else COMPARISONS[comparison]


def get_method(name: str, allowed: tuple[str, ...] | None = None) -> Method:
    """The method called ``name``; a :class:`ConfigError` naming the choices otherwise."""
    choices = allowed if allowed is not None else tuple(METHODS)
    if name not in choices:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(choices)}")
    return METHODS[name]
