"""Make one dataset of the config: read or generate it, shuffle, cache as npz, write its stats."""

import json
import logging
import os
import shutil
import sys
from pathlib import Path

from slide_bench import data
from slide_bench.data.synthetic import resolve_spec

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
log = logging.getLogger("prepare")

spec = snakemake.params.spec
seed = spec["shuffle_seed"]
if "synthetic" in spec:
    synth = spec["synthetic"]
    overrides = {key: str(value) for key, value in synth.get("params", {}).items()}
    log.info("generating %s (seed %d, overrides %s)", synth["preset"], synth["seed"], overrides)
    train, test = data.generate(resolve_spec(synth["preset"], overrides), synth["seed"])
elif "train" in spec:
    log.info("reading %s and %s", snakemake.input.train, snakemake.input.test)
    train = data.read_xc_text(snakemake.input.train)
    test = data.read_xc_text(snakemake.input.test)
    log.info("shuffling both splits with seed %d", seed)
    train, test = data.shuffle(train, seed), data.shuffle(test, seed)
elif "zip" in spec:
    log.info("reading split %d of %s", spec["split"], snakemake.input.archive)
    train, test = data.read_repo_zip(snakemake.input.archive, spec["split"])
    log.info("shuffling both splits with seed %d", seed)
    train, test = data.shuffle(train, seed), data.shuffle(test, seed)
else:
    archive = snakemake.input.get("archive")
    log.info("fetching and verifying %s (local archive: %s)", spec["registry"], archive)
    cache = data.prepare(spec["registry"], root="data", archive=archive, split=spec["split"],
                         seed=seed)
    train, test = data.load_npz(cache / "train.npz"), data.load_npz(cache / "test.npz")
    for part in ("train", "test"):
        source, target = cache / f"{part}.npz", Path(snakemake.output[part])
        if source.resolve() != target.resolve():  # link the library's cache, copy across devices
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)

if "registry" not in spec:
    data.save_npz(train, snakemake.output.train)
    data.save_npz(test, snakemake.output.test)
stats = {"train": data.dataset_stats(train), "test": data.dataset_stats(test)}
with open(snakemake.output.stats, "w") as fh:
    json.dump(stats, fh, indent=2)
log.info("cached %d train / %d test points", train.n_points, test.n_points)
