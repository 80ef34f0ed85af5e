"""Resumable prep: a prep killed midway resumes from its finished shards and gives the same store as an
uninterrupted one; stale and damaged shards are redone, never read."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_recipe
from fake_timit import make_fake_timit

from lstm_asr.data.feature_store import FeatureSplit

HERE = Path(__file__).parent
SHARD = 4  # utterances per shard: the 32 training utterances make 8 shards


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 training utterances (4 speakers x 8), 8 dev, 8 core test."""
    return make_fake_timit(tmp_path_factory.mktemp("resume") / "TIMIT", n_train=4, n_dev=1, n_core=1,
                           utts_per_speaker=8, seed=5)


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training split prepared in one uninterrupted run."""
    from data_prep.corpora import open_source
    from lstm_asr.data.prep import feature_config, prep_split
    from lstm_asr.data.tokens import TokenSet
    from lstm_asr.recipe import load_recipe

    work = tmp_path_factory.mktemp("ref")
    recipe = load_recipe(write_recipe(work / "r.yaml", corpus, work / "feats"))
    source = open_source("timit", corpus)
    report = prep_split(source, "train", work / "feats" / "train", feature_config(recipe),
                        TokenSet(source.tokens()), jobs=1, shard_size=SHARD)
    assert report.featurized == 32 and report.reused_shards == 0
    assert not (work / "feats" / "train.shards").exists()  # removed once the split is finished
    return work / "feats" / "train"


def same_store(a: Path, b: Path) -> None:
    for name in ("feats.npy", "labels.npy", "index.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def prep_args(corpus: Path, tmp_path: Path) -> list[str]:
    recipe = write_recipe(tmp_path / "r.yaml", corpus, tmp_path / "feats")
    return [str(recipe), "--jobs", "1", "--shard-size", str(SHARD)]


def test_prep_killed_midway_resumes_without_redoing_finished_shards(corpus: Path, reference: Path,
                                                                     tmp_path: Path) -> None:
    args = prep_args(corpus, tmp_path)
    shard_dir = tmp_path / "feats" / "train.shards"
    env = {**os.environ, "SLOW_PREP_DELAY": "0.15", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(HERE / "slow_prep.py"), *args], env=env, cwd=HERE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list(shard_dir.glob("shard-*.npz"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no shard was written"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the prep process and its feature workers, without warning
        proc.wait()
        proc.stderr.close()
    finished = sorted(shard_dir.glob("shard-*.npz"))
    assert 2 <= len(finished) < 8, finished
    assert not (tmp_path / "feats" / "train" / "DONE").exists()
    # Damage a finished shard as a crash of the disk (not of prep) could: it must be detected and redone.
    first = finished[0]
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    (shard_dir / "shard-000000999.npz.tmp").write_bytes(b"half a shard")  # a write the kill interrupted

    res = subprocess.run([sys.executable, "-m", "lstm_asr", "prep", *args], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if x.startswith("train:"))
    m = re.search(r"reused (\d+) shards \((\d+) utterances\), featurized (\d+)", line)
    assert m, line
    reused, reused_utts, featurized = map(int, m.groups())
    assert reused == len(finished) - 1  # every finished shard but the damaged one
    assert reused_utts == SHARD * reused and featurized == 32 - reused_utts
    same_store(tmp_path / "feats" / "train", reference)
    assert not shard_dir.exists()
    assert len(FeatureSplit(tmp_path / "feats" / "train")) == 32


def interrupted_prep(corpus: Path, out: Path, after: int, **cfg_overrides) -> None:
    """Run the training split's prep in-process and stop it (an exception) after ``after`` utterances."""
    from data_prep.corpora import open_source
    from lstm_asr.data.features import FeatureConfig
    from lstm_asr.data.prep import prep_split
    from lstm_asr.data.tokens import TokenSet

    class Stop(Exception):
        pass

    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count == after:
            raise Stop

    source = open_source("timit", corpus)
    with pytest.raises(Stop):
        prep_split(source, "train", out, FeatureConfig(**cfg_overrides), TokenSet(source.tokens()), jobs=1,
                   progress=tick, shard_size=SHARD)


def resume(corpus: Path, out: Path):
    from data_prep.corpora import open_source
    from lstm_asr.data.features import FeatureConfig
    from lstm_asr.data.prep import prep_split
    from lstm_asr.data.tokens import TokenSet

    source = open_source("timit", corpus)
    return prep_split(source, "train", out, FeatureConfig(), TokenSet(source.tokens()), jobs=1, shard_size=SHARD)


def test_damaged_and_stale_shards_are_redone(corpus: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "feats" / "train"
    shard_dir = out.with_name("train.shards")
    interrupted_prep(corpus, out, after=3 * SHARD + 1)  # three shards finished, the fourth begun
    assert len(list(shard_dir.glob("shard-*.npz"))) == 3
    # Flip one byte inside the second shard's feature data: the zip member's CRC-32 catches it.
    second = shard_dir / f"shard-{SHARD:09d}.npz"
    data = bytearray(second.read_bytes())
    data[len(data) // 3] ^= 0x40
    second.write_bytes(bytes(data))
    report = resume(corpus, out)
    assert (report.reused_shards, report.featurized) == (2, 32 - 2 * SHARD)
    same_store(out, reference)

    # Shards made with other feature settings are stale: none is reused, and the result is still right.
    out2 = tmp_path / "feats2" / "train"
    interrupted_prep(corpus, out2, after=2 * SHARD + 1, num_mel_bins=23)
    assert len(list(out2.with_name("train.shards").glob("shard-*.npz"))) == 2
    report = resume(corpus, out2)
    assert (report.reused_shards, report.featurized) == (0, 32)
    same_store(out2, reference)
