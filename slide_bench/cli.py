"""Command-line plumbing shared by every method's CLI and the bench.

Both CLIs take the same run flags, read the same YAML config layout (a ``run:`` section for
:class:`~slide_bench.harness.RunSettings`, the rest for the method's config dataclass), accept the
same ``--set dotted.key=value`` overrides, and turn every user-fixable error into one line on
stderr and a non-zero exit status (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from slide_bench.errors import ConfigError, SuiteError
from slide_bench.harness import RunSettings

__all__ = [
    "add_run_arguments",
    "from_dict",
    "load_config",
    "main_guard",
    "nest",
    "parse_set",
    "parse_sets",
    "run_settings",
    "split_set",
    "to_dict",
]

T = TypeVar("T")

# exponent floats without a dot or without an exponent sign ("1e-3", "1.0e5"), which PyYAML
# (YAML 1.1) reads as strings
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags every training CLI shares to ``parser``."""
    parser.add_argument("--train", required=True, help="training set: XC text (.txt) or .npz cache")
    parser.add_argument("--test", required=True, help="test set: XC text (.txt) or .npz cache")
    parser.add_argument(
        "--out", required=True, help="curve CSV to write (sidecar: same name .json)"
    )
    parser.add_argument("--threads", type=int, help="threads to use (default: config or 1)")
    parser.add_argument("--seed", type=int, help="seed of batch order, eval subset and model")
    parser.add_argument("--epochs", type=int, help="passes over the training set")
    parser.add_argument("--time-budget", type=float, help="stop after this many training seconds")
    parser.add_argument("--eval-every", type=int, help="evaluate every this many iterations")
    parser.add_argument("--dataset-name", help="dataset name written in the curve rows")
    parser.add_argument("--checkpoint", help="checkpoint file (default: <out>.ckpt.npz)")
    parser.add_argument("--config", help="YAML config file (run: section + method settings)")
    add_set_argument(
        parser, "override one config value, dotted keys (e.g. run.batch_size=256); repeatable"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")


def add_set_argument(
    parser: argparse.ArgumentParser, help: str, flag: str = "--set", dest: str = "sets"
) -> None:
    """Add a repeatable ``KEY=VALUE`` override flag (read with :func:`parse_sets`) to ``parser``."""
    parser.add_argument(flag, dest=dest, action="append", default=[], metavar="KEY=VALUE",
                        help=help)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {key!r} is a value, not a section")
        node = child
    node[keys[-1]] = value


def split_set(item: str) -> tuple[str, str]:
    """One ``KEY=VALUE`` override as ``(key, value text)``; the one ``--set`` syntax of the suite.

    Raises
    ------
    ConfigError
        No ``=`` or an empty key.
    """
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
    return key.strip(), raw


def parse_set(item: str) -> tuple[str, Any]:
    """One ``KEY=VALUE`` override as ``(dotted key, value)``, the value parsed as a YAML scalar.

    Raises
    ------
    ConfigError
        No ``=``, an empty key, or a value that is not valid YAML.
    """
    key, raw = split_set(item)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {item!r}: value is not valid YAML") from err
    return key, value


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides as one flat mapping of dotted keys (a later key wins)."""
    return dict(parse_set(item) for item in items)


def nest(flat: Mapping[str, Any], tree: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply dotted-key values to ``tree`` (a new one by default), in order; return it."""
    tree = {} if tree is None else tree
    for key, value in flat.items():
        _set_dotted(tree, key, value)
    return tree


def load_config(config_file: str | None, sets: Sequence[str]) -> dict[str, Any]:
    """Read a YAML config and apply ``KEY=VALUE`` overrides (values parsed as YAML scalars).

    Parameters
    ----------
    config_file : str or None
        Path of a YAML mapping, or None for an empty config.
    sets : sequence of str
        Overrides such as ``"output.hash.K=6"`` or ``"run.batch_size=256"``.

    Returns
    -------
    dict
        The nested config.
    """
    tree = _read_config(Path(config_file)) if config_file else {}
    for item in sets:
        key, value = parse_set(item)
        _set_dotted(tree, key, value)
    return tree


def _read_config(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ConfigError(f"config file {path} is not valid YAML{at}: {problem}") from err
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(loaded).__name__}")
    return loaded or {}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as type ``tp`` (a config field's annotation), or a ConfigError at ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, typing.get_args(tp), where)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a section (mapping), got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    scalar = _SCALARS.get(tp)
    return value if scalar is None else scalar(value, where)


def _coerce_union(value: Any, args: tuple[Any, ...], where: str) -> Any:
    # the first member type that takes the value; the first member's error otherwise
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, where)
        except ConfigError as err:
            errors.append(err)
    raise errors[0]


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _as_int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigError(f"{where}: expected an integer, got {value!r}")


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
        return float(value)  # "1e-3": a float in YAML 1.2 but a string to PyYAML (YAML 1.1)
    raise ConfigError(f"{where}: expected a number, got {value!r}")


def _as_str(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected a string, got {value!r}")


#: checks of the scalar field types (``Any`` and unknown types take the value as it is)
_SCALARS: dict[Any, Callable[[Any, str], Any]] = {
    bool: _as_bool, int: _as_int, float: _as_float, str: _as_str,
}


def from_dict(cls: type[T], mapping: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a (nested) mapping, checking names and types.

    Parameters
    ----------
    cls : dataclass type
        Target type; nested dataclass fields take nested mappings.
    mapping : mapping
        Values to set; missing fields keep their defaults.
    where : str
        Prefix used in error messages (the dotted path of this section).

    Returns
    -------
    cls
        The instance (its ``__post_init__`` validation, if any, has run).

    Raises
    ------
    ConfigError
        An unknown key, a value of the wrong type, or a value the dataclass rejects.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in mapping.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance as a plain nested dict (for provenance and checkpoints)."""
    return dataclasses.asdict(obj)


def run_settings(args: argparse.Namespace, config: Mapping[str, Any]) -> RunSettings:
    """Combine the config's ``run:`` section with the command-line flags (flags win)."""
    section = dict(config.get("run") or {})
    flags = {
        "threads": args.threads,
        "seed": args.seed,
        "epochs": args.epochs,
        "time_budget_s": args.time_budget,
        "eval_every": args.eval_every,
        "dataset": args.dataset_name,
    }
    section.update({k: v for k, v in flags.items() if v is not None})
    if "dataset" not in section:
        section["dataset"] = Path(args.train).parent.name or "unknown"
    settings = from_dict(RunSettings, section, "run")
    for name in ("batch_size", "epochs", "eval_every", "threads"):
        if getattr(settings, name) is not None and getattr(settings, name) < 1:
            raise ConfigError(f"run.{name} must be >= 1, got {getattr(settings, name)}")
    if settings.max_iterations is not None and settings.max_iterations < 1:
        raise ConfigError(f"run.max_iterations must be >= 1, got {settings.max_iterations}")
    if settings.eval_every_s is not None and not settings.eval_every_s > 0:
        raise ConfigError(f"run.eval_every_s must be > 0 seconds, got {settings.eval_every_s}")
    if settings.time_budget_s is not None and not settings.time_budget_s > 0:
        raise ConfigError(f"run.time_budget_s must be > 0 seconds, got {settings.time_budget_s}")
    if not settings.checkpoint_every_s >= 0:
        raise ConfigError(
            f"run.checkpoint_every_s must be >= 0 seconds, got {settings.checkpoint_every_s}"
        )
    return settings


def main_guard(main: Callable[[Sequence[str] | None], int]) -> Callable[[], None]:
    """Wrap a CLI ``main(argv) -> status`` with logging set-up and clean error exits.

    A :class:`SuiteError` prints ``error: <message>`` and exits with its ``exit_code`` (2, or 3
    for a missing GPU); ``OSError`` (disk full, permissions) prints one line and exits 2;
    Ctrl-C exits 130. With ``--debug`` in ``sys.argv`` errors keep their traceback.
    """

    def wrapped() -> None:
        debug = "--debug" in sys.argv
        logging.basicConfig(
            level=logging.DEBUG if debug else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
            stream=sys.stderr,
        )
        try:
            code = main(sys.argv[1:])
        except SuiteError as err:
            if debug:
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)
        except OSError as err:
            if debug:
                raise
            print(
                f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr
            )
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        sys.exit(code)

    return wrapped
