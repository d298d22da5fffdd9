"""Checkpoint integrity and the shared config/CLI plumbing."""

import dataclasses
import hashlib
import json
import subprocess
import sys
import tracemalloc
import zipfile
from typing import Literal

import numpy as np
import pytest

from slide_bench.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from slide_bench.cli import from_dict, load_config
from slide_bench.errors import ConfigError


def _state():
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((20, 8)).astype(np.float32), "step": np.arange(3)}


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, _state(), {"iteration": 7})
    arrays, meta = load_checkpoint(path)
    assert meta == {"iteration": 7}
    for k, v in _state().items():
        np.testing.assert_array_equal(arrays[k], v)
        assert arrays[k].dtype == v.dtype
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temp file left behind


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_damaged_checkpoint_is_detected(tmp_path, damage):
    path = tmp_path / "c.npz"
    save_checkpoint(path, _state(), {"iteration": 7})
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob[len(blob) // 3] ^= 0x01
    elif damage == "empty":
        blob = bytearray()
    else:
        blob = bytearray(b"PK\x03\x04 not really a zip")
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_checkpoint_digest_is_sha256_of_the_raw_bytes(tmp_path):
    """Oracle: sha256 over name, dtype, shape and ``tobytes()`` of each array in name order
    (the format's definition); covers an empty and a non-contiguous array."""
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    state = {
        "b": base[:, ::2],
        "a": np.arange(3, dtype=np.int16),
        "e": np.zeros((0, 5), np.float32),
    }
    save_checkpoint(tmp_path / "c.npz", state, {})
    h = hashlib.sha256()
    for name in sorted(state):
        arr = state[name]
        h.update(name.encode() + str(arr.dtype).encode() + repr(arr.shape).encode())
        h.update(arr.tobytes())
    with zipfile.ZipFile(tmp_path / "c.npz") as zf, zf.open("__checkpoint_meta__.npy") as fh:
        record = json.loads(np.lib.format.read_array(fh).tobytes().decode())
    assert record["sha256"] == h.hexdigest()
    arrays, _ = load_checkpoint(tmp_path / "c.npz")
    np.testing.assert_array_equal(arrays["b"], base[:, ::2])


def test_checkpoint_is_streamed_not_built_in_memory(tmp_path):
    """Saving a 64 MiB state must not hold another copy of it (at Amazon-670K shape the state is
    over a gigabyte): traced peak well under the state's size."""
    state = {"w": np.ones((16, 1 << 20), np.float32), "m": np.zeros(1 << 20, np.float32)}
    size = sum(a.nbytes for a in state.values())
    tracemalloc.start()
    try:
        save_checkpoint(tmp_path / "c.npz", state, {"iteration": 1})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 2, (peak, size)
    arrays, _ = load_checkpoint(tmp_path / "c.npz")
    np.testing.assert_array_equal(arrays["w"], state["w"])


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "c.npz", {"o": np.array([{}], dtype=object)}, {})


@dataclasses.dataclass
class _Inner:
    k: int = 6
    family: Literal["simhash", "dwta"] = "dwta"


@dataclasses.dataclass
class _Outer:
    lr: float = 1e-4
    hidden: list[int] = dataclasses.field(default_factory=lambda: [128])
    budget: float | None = None
    inner: _Inner = dataclasses.field(default_factory=_Inner)

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr must be positive")


def test_config_overrides_and_types(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("lr: 0.001\ninner:\n  family: simhash\nrun:\n  batch_size: 64\n")
    tree = load_config(str(cfg_file), ["inner.k=9", "hidden=[256, 128]", "budget=3"])
    run = tree.pop("run")
    assert run == {"batch_size": 64}
    cfg = from_dict(_Outer, tree)
    assert cfg == _Outer(lr=0.001, hidden=[256, 128], budget=3.0, inner=_Inner(9, "simhash"))


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["inner.kk=3"], "unknown key 'kk'"),
        (["inner.family=wta"], "not one of"),
        (["lr=fast"], "expected a number"),
        (["lr=-1"], "lr must be positive"),
        (["hidden=3"], "expected a list"),
        (["novalue"], "KEY=VALUE"),
    ],
)
def test_bad_config_values_name_the_key(sets, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(_Outer, load_config(None, sets))


def test_missing_or_invalid_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "nope.yaml"), [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad), [])


@pytest.mark.slow
def test_main_guard_exit_codes():
    code = (
        "import sys\n"
        "from slide_bench.cli import main_guard\n"
        "from slide_bench.errors import ConfigError, GPUUnavailableError\n"
        "def main(argv):\n"
        "    if argv[0] == 'gpu': raise GPUUnavailableError('no GPU visible')\n"
        "    if argv[0] == 'cfg': raise ConfigError('bad value for run.epochs')\n"
        "    return 0\n"
        "main_guard(main)()\n"
    )
    for arg, status, text in [("gpu", 3, "no GPU visible"), ("cfg", 2, "bad value"), ("ok", 0, "")]:
        proc = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True)
        assert proc.returncode == status
        assert text in proc.stderr
        assert "Traceback" not in proc.stderr
