"""Make one dataset of the config: read or generate it, shuffle, cache as npz, write its stats."""

import json
import logging
import sys

from slide_engine.data import (
    dataset_stats,
    generate,
    prepare_registry,
    read_repo_zip,
    read_xc_text,
    save_npz,
    shuffle,
)
from slide_engine.data.synthetic import resolve_spec

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
log = logging.getLogger("prepare")

spec = snakemake.params.spec
seed = spec["shuffle_seed"]
if "synthetic" in spec:
    synth = spec["synthetic"]
    overrides = {key: str(value) for key, value in synth.get("params", {}).items()}
    log.info("generating preset %s (seed %d, overrides %s)", synth["preset"], synth["seed"], overrides)
    train, test = generate(resolve_spec(synth["preset"], overrides), synth["seed"])
elif "train" in spec:
    log.info("reading %s and %s", snakemake.input.train, snakemake.input.test)
    train, test = read_xc_text(snakemake.input.train), read_xc_text(snakemake.input.test)
    log.info("shuffling both splits with seed %d", seed)
    train, test = shuffle(train, seed), shuffle(test, seed)
elif "zip" in spec:
    log.info("reading split %d of %s", spec["split"], snakemake.input.archive)
    train, test = read_repo_zip(snakemake.input.archive, spec["split"])
    log.info("shuffling both splits with seed %d", seed)
    train, test = shuffle(train, seed), shuffle(test, seed)
else:
    archive = snakemake.input.get("archive")
    log.info("fetching and verifying %s (local archive: %s)", spec["registry"], archive)
    train, test = prepare_registry(spec["registry"], archive=archive, split=spec["split"], seed=seed)

save_npz(train, snakemake.output.train)
save_npz(test, snakemake.output.test)
stats = {"train": dataset_stats(train), "test": dataset_stats(test)}
with open(snakemake.output.stats, "w") as fh:
    json.dump(stats, fh, indent=2, default=float)
log.info("cached %d train / %d test points", train.n_points, test.n_points)
