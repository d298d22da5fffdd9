"""Datasets of the suite: XC text I/O, npz cache, shuffle, registry, download, synthetic data."""

from slide_bench.data.cache import load_dataset, load_npz, save_npz
from slide_bench.data.prepare import prepare
from slide_bench.data.repo_zip import read_repo_zip
from slide_bench.data.stats import dataset_stats
from slide_bench.data.synthetic import PRESETS, SynthSpec, generate
from slide_bench.data.xc_text import read_xc_text, write_xc_text
from slide_bench.data.xcdata import XCData, shuffle

__all__ = [
    "PRESETS",
    "SynthSpec",
    "XCData",
    "dataset_stats",
    "generate",
    "load_dataset",
    "load_npz",
    "prepare",
    "read_repo_zip",
    "read_xc_text",
    "save_npz",
    "shuffle",
    "write_xc_text",
]
