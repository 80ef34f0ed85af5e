"""SpeechBrain against lstm-asr on the same recorded speech: a recipe's exact splits as a TIMIT-layout folder.

Two steps, run from the repository root (the recipe's corpus paths are relative to it; ``--root`` changes that)::

    .venv/bin/python bench/speechbrain_recorded.py write recipes/real_en/recorded.yaml /work/data/sb_recorded
    SB_ARCH=blstm SB_THREADS=1 bash ../shared/peers/speechbrain_timit.sh /work/data/sb_recorded OUT 7 \\
        --rnn_layers=3 --rnn_neurons=160
    .venv/bin/python bench/speechbrain_recorded.py score /work/data/sb_recorded OUT [--exp exp/recorded]

``write`` opens the recipe's prepared splits the way ``lstm-asr train`` does
(:func:`lstm_asr.data.corpus_mix.load_training_data`: every corpus's train/dev/test split, the training utterances
whose sentence is a dev or test sentence left out) and writes each utterance's audio, read by the corpus's own
reader (:func:`lstm_asr.data.wave_batches.corpus_reader`, 16 kHz mono), with lstm-asr's own labels:

* ``TRAIN/DR1/<speaker>/Unnnnn.{WAV,PHN,WRD}``: the training utterances lstm-asr trains on (speaker folders named
  ``S<corpus speaker>``, upper case, none of them one of SpeechBrain's dev or core-test ids);
* ``TEST/DR1/<dev id>/...``: the dev utterances, each real dev speaker under its own id from SpeechBrain's 50 dev
  speaker ids (``recipes/TIMIT/timit_prepare.py``, ``_get_speaker``);
* ``TEST/DR1/<core-test id>/...``: the test utterances of every corpus under SpeechBrain's 24 core-test ids, so
  several real speakers share an id (the first test corpus's speakers are spread over the ids after the ones the
  other corpora's speakers get alone). SpeechBrain's TIMIT recipe normalises features globally (``norm_type:
  global``) and never reads the speaker id, so sharing an id changes nothing in training or decoding.
* ``mapping.tsv``: key (path without extension, as the peer harness's ``hyp_test.tsv`` has it), split, corpus,
  real speaker, utterance id and lstm-asr's reference labels, to score the hypotheses per corpus.

Labels: lstm-asr's references are TIMIT-61 symbols (``h#`` for silence); ``.PHN`` has them one a line. The recorded
corpora have no phone times: the start/end sample numbers in ``.PHN`` and ``.WRD`` are placeholders (the utterance
cut in equal parts). SpeechBrain's prep reads only the phone column of ``.PHN`` for training
(``get_phoneme_lists``: the end column goes to ``ground_truth_phn_ends``, which the CTC recipe never reads) and only
the word column of ``.WRD`` (``wrd``, unused by the CTC recipe). It folds the labels to 39 classes itself
(``h#`` -> ``sil``) and merges consecutive ``sil``s.

``score`` reads the peer harness's ``OUT/hyp_test.tsv`` and scores it with lstm-asr's scorer against lstm-asr's
references, per corpus, with each corpus's own scoring mapping (``data_prep.corpora.score_units_for``: 39 folded
classes, ``sil`` scored like any phone) -- the convention of lstm-asr's ``results.json``. It also prints the PER
with consecutive ``sil``s merged on both sides (SpeechBrain trains on merged ``sil``s), SpeechBrain's own test PER
and its per-epoch dev PER and wall time, and, with ``--exp``, lstm-asr's figures for the same corpora.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import benchlib  # noqa: F401  (puts the checkout on sys.path)
import numpy as np

# SpeechBrain 1.1.2, recipes/TIMIT/timit_prepare.py, _get_speaker(): the speakers its prep takes from TEST/ as
# dev and as test (by substring anywhere in the path).
SB_DEV_SPEAKERS = (
    "fadg0 faks0 fcal1 fcmh0 fdac1 fdms0 fdrw0 fedw0 fgjd0 fjem0 fjmg0 fjsj0 fkms0 fmah0 fmml0 fnmr0 frew0 fsem0 "
    "majc0 mbdg0 mbns0 mbwm0 mcsh0 mdlf0 mdls0 mdvc0 mers0 mgjf0 mglb0 mgwt0 mjar0 mjfc0 mjsw0 mmdb1 mmdm2 mmjr0 "
    "mmwh0 mpdf0 mrcs0 mreb0 mrjm4 mrjr0 mroa0 mrtk0 mrws1 mtaa0 mtdt0 mteb0 mthc0 mwjg0").upper().split()
SB_TEST_SPEAKERS = (
    "fdhc0 felc0 fjlm0 fmgd0 fmld0 fnlp0 fpas0 fpkt0 mbpm0 mcmj0 mdab0 mgrt0 mjdh0 mjln0 mjmp0 mklt0 mlll0 mlnt0 "
    "mnjm0 mpam0 mtas1 mtls0 mwbt0 mwew0").upper().split()
# What SpeechBrain's prep matches anywhere in a path of the upper-case layout (and the folder check of the harness).
SB_PATH_WORDS = ("TRAIN", "TEST", "SA1", "SA2", ".WAV", "train", "test", "sa1", "sa2", ".wav")
MAPPING_FIELDS = ("key", "split", "corpus", "speaker", "utt_id", "ref")


def assign_speakers(speakers: list[tuple[str, str]], ids: tuple[str, ...] | list[str],
                    alone: tuple[str, ...] = ()) -> dict[tuple[str, str], str]:
    """(corpus, speaker) -> an id of ``ids``: one id each while they last, then shared round-robin.

    Speakers of the corpora in ``alone`` take the first ids, one each, and no other speaker shares theirs.
    """
    ordered = sorted(speakers, key=lambda s: (s[0] not in alone, s))
    first = [s for s in ordered if s[0] in alone]
    if len(first) >= len(ids):
        raise SystemExit(f"{len(first)} speakers to give an id of their own, only {len(ids)} ids")
    out = {s: ids[i] for i, s in enumerate(first)}
    rest, pool = [s for s in ordered if s[0] not in alone], list(ids[len(first):])
    for i, s in enumerate(rest):
        out[s] = pool[i % len(pool)]
    return out


def safe_name(text: str) -> str:
    """An upper-case folder name from a corpus speaker name (letters and digits only)."""
    return re.sub(r"[^A-Z0-9]", "", text.upper()) or "X"


def phn_lines(labels: list[str], samples: int) -> list[str]:
    """``.PHN`` lines ``start end label`` with placeholder times: the utterance cut in ``len(labels)`` equal parts."""
    n = max(len(labels), 1)
    return [f"{samples * i // n} {samples * (i + 1) // n} {p}" for i, p in enumerate(labels)]


def check_path(path: str) -> None:
    """Stop if ``path`` holds a word SpeechBrain's prep matches anywhere in a path (the harness refuses it too)."""
    bad = [w for w in SB_PATH_WORDS if w in path]
    if bad:
        raise SystemExit(f"{path} contains {bad[0]!r}; SpeechBrain's prep would mis-split its files")


def write_utterance(folder: Path, name: str, wave: np.ndarray, labels: list[str], text: str) -> None:
    """``name.{WAV,PHN,WRD}`` in ``folder``: 16-bit 16 kHz mono audio, labels and words with placeholder times."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / f"{name}.WAV", np.clip(wave, -1.0, 1.0), 16000, subtype="PCM_16")
    n = len(wave)
    (folder / f"{name}.PHN").write_text("\n".join(phn_lines(labels, n)) + "\n")
    words = text.split() or ["<unk>"]
    (folder / f"{name}.WRD").write_text("\n".join(f"{n * i // len(words)} {n * (i + 1) // len(words)} {w}"
                                                  for i, w in enumerate(words)) + "\n")


def recipe_splits(recipe_path: str) -> list[dict[str, Any]]:
    """Every utterance the recipe trains, selects or tests on: split role, corpus, speaker, id, labels, text, and
    a function reading its 16 kHz audio (the training utterances the sentence rule drops are left out)."""
    from lstm_asr.data.corpus_mix import load_training_data
    from lstm_asr.data.wave_batches import corpus_reader
    from lstm_asr.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    data = load_training_data(recipe, show_progress=False)
    keep = data.keep_mask()
    out = []
    offset = 0
    for c in data.corpora:
        for role, name in (("train", c.entry.train_split), ("dev", c.entry.dev_split), ("test", c.entry.test_split)):
            split = getattr(c, role)
            if split is None:
                continue
            read = corpus_reader(c.entry, split, name, 16000)
            texts = split.index.get("texts") or [""] * len(split.ids)
            for i, (uid, spk, ref, text) in enumerate(zip(split.ids, split.speakers, split.refs, texts, strict=True)):
                if role == "train" and not keep[offset + i]:
                    continue
                out.append({"split": role, "corpus": c.entry.name, "speaker": spk, "utt_id": uid,
                            "labels": ref.split(), "text": text, "read": read, "index": i})
            if role == "train":
                offset += len(split.ids)
    return out


def write_corpus(utts: list[dict[str, Any]], out: Path) -> dict[str, int]:
    """The TIMIT-layout folder and ``mapping.tsv`` (see the module docstring); utterance counts per split/corpus."""
    (out / "TRAIN/DR1").mkdir(parents=True, exist_ok=True)
    (out / "TEST/DR1").mkdir(parents=True, exist_ok=True)
    test_corpora = sorted({u["corpus"] for u in utts if u["split"] == "test"})
    # Every corpus but the largest-by-speakers keeps its test speakers on ids of their own.
    spk_count = {c: len({u["speaker"] for u in utts if u["split"] == "test" and u["corpus"] == c})
                 for c in test_corpora}
    shared = max(test_corpora, key=lambda c: spk_count[c]) if test_corpora else ""
    dev_ids = assign_speakers(sorted({(u["corpus"], u["speaker"]) for u in utts if u["split"] == "dev"}),
                              SB_DEV_SPEAKERS)
    if len(set(dev_ids.values())) < len(dev_ids):
        print(f"note: {len(dev_ids)} dev speakers share SpeechBrain's {len(SB_DEV_SPEAKERS)} dev ids")
    test_ids = assign_speakers(sorted({(u["corpus"], u["speaker"]) for u in utts if u["split"] == "test"}),
                               SB_TEST_SPEAKERS, alone=tuple(c for c in test_corpora if c != shared))
    counts: dict[str, int] = defaultdict(int)
    rows = []
    serial = 0
    for u in utts:
        serial += 1
        who = (u["corpus"], u["speaker"])
        if u["split"] == "train":
            folder = f"TRAIN/DR1/S{safe_name(u['corpus'])}{safe_name(u['speaker'])}"
        else:
            folder = f"TEST/DR1/{(dev_ids if u['split'] == 'dev' else test_ids)[who]}"
        name = f"U{serial:06d}"
        wave = u["read"](u["index"]).numpy().astype(np.float32)
        write_utterance(out / folder, name, wave, u["labels"], u["text"])
        rows.append({"key": f"{folder}/{name}", "split": u["split"], "corpus": u["corpus"], "speaker": u["speaker"],
                     "utt_id": u["utt_id"], "ref": " ".join(u["labels"])})
        counts[f"{u['split']}/{u['corpus']}"] += 1
    with open(out / "mapping.tsv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MAPPING_FIELDS, delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    with open(out / "speaker_ids.json", "w") as f:
        json.dump({"dev": {"/".join(k): v for k, v in dev_ids.items()},
                   "test": {"/".join(k): v for k, v in test_ids.items()}}, f, indent=1)
    return dict(counts)


def merge_sil(seq: list[str]) -> list[str]:
    """Consecutive ``sil``s as one (SpeechBrain's prep does this to its 39-class references)."""
    return [p for i, p in enumerate(seq) if p != "sil" or i == 0 or seq[i - 1] != "sil"]


def read_mapping(corpus: Path) -> list[dict[str, str]]:
    """The rows of ``mapping.tsv``."""
    with open(corpus / "mapping.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def score_hyps(mapping: list[dict[str, str]], hyps: dict[str, list[str]],
               corpus_types: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Test PER per corpus with lstm-asr's scorer: references and hypotheses through the corpus's scoring mapping.

    ``corpus_types``: corpus name -> its source type (for its mapping). Also the PER with ``sil`` runs merged.
    """
    from data_prep.corpora import score_units_for
    from lstm_asr.scoring.levenshtein import score

    out: dict[str, dict[str, Any]] = {}
    for name, kind in corpus_types.items():
        fold = score_units_for(kind, "phones")
        rows = [r for r in mapping if r["split"] == "test" and r["corpus"] == name]
        missing = [r["key"] for r in rows if r["key"] not in hyps]
        refs = [fold(r["ref"].split()) for r in rows]
        hs = [fold(hyps.get(r["key"], [])) for r in rows]
        e = score(refs, hs)
        e2 = score([merge_sil(r) for r in refs], [merge_sil(h) for h in hs])
        out[name] = {"per": round(100 * e.rate, 2), "utterances": len(rows), "ref_tokens": e.ref_tokens,
                     "sub": e.sub, "dele": e.dele, "ins": e.ins, "missing_hyps": len(missing),
                     "per_sil_merged": round(100 * e2.rate, 2)}
    return out


def sb_log(sb_out: Path) -> dict[str, Any]:
    """SpeechBrain's per-epoch dev PER (train_log.txt), epoch wall times (log.txt) and its own test PER."""
    res = sb_out / "results"
    dev = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"epoch: (\d+),.*?valid PER: ([0-9.]+)",
                                                                    (res / "train_log.txt").read_text())}
    test = re.findall(r"test PER: ([0-9.]+)", (res / "train_log.txt").read_text())
    begin, end = {}, {}
    for line in (res / "log.txt").read_text().splitlines():
        if not re.match(r"\d{4}-\d\d-\d\d ", line):
            continue
        stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if m := re.search(r"Going into epoch (\d+)$", line.rstrip()):
            begin[int(m.group(1))] = stamp
        elif m := re.search(r" - epoch: (\d+), lr:", line):
            end[int(m.group(1))] = stamp
    seconds = {k: round(end[k] - begin[k], 1) for k in sorted(end) if k in begin}
    return {"dev_per": dev, "epoch_seconds": seconds, "test_per": float(test[-1]) if test else None}


def rescore_decode(folder: Path) -> dict[str, float]:
    """An lstm-asr decode folder's ``ref.txt``/``hyp.txt`` (folded symbols) rescored: PER as is and with ``sil``
    runs merged on both sides (the second convention :func:`score_hyps` prints)."""
    from lstm_asr.scoring.levenshtein import score

    def read(name: str) -> dict[str, list[str]]:
        return {(p := line.split())[0]: p[1:] for line in (folder / name).read_text().splitlines() if line.strip()}

    refs, hyps = read("ref.txt"), read("hyp.txt")
    keys = sorted(refs)
    plain = score([refs[k] for k in keys], [hyps.get(k, []) for k in keys])
    merged = score([merge_sil(refs[k]) for k in keys], [merge_sil(hyps.get(k, [])) for k in keys])
    return {"per": round(100 * plain.rate, 2), "per_sil_merged": round(100 * merged.rate, 2)}


def lstm_asr_figures(exp: Path) -> dict[str, Any]:
    """lstm-asr's run: epochs, per-epoch seconds (train + dev), best dev PER, test PER per corpus (results.json)
    and rescored from its decode folders with ``sil`` runs merged."""
    res = json.loads((exp / "results.json").read_text())
    epochs = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()
              if '"kind": "epoch"' in line]
    return {"epochs": len(epochs),
            "epoch_seconds": {e["epoch"]: round(e["epoch_seconds"] + e.get("dev_seconds", 0.0), 1) for e in epochs},
            "dev_per": {e["epoch"]: e["dev_per"] for e in epochs}, "best_dev_per": res["dev"]["per"],
            "test_per": {k: v["per"] for k, v in res.get("test_corpora", {}).items()},
            "rescored": {k: rescore_decode(exp / f"decode_test_{k}") for k in res.get("test_corpora", {})
                         if (exp / f"decode_test_{k}" / "hyp.txt").is_file()}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(benchlib.ROOT),
                    help="folder the recipe's corpus paths are relative to (default: this checkout)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="write the recipe's splits as a TIMIT-layout folder")
    w.add_argument("recipe")
    w.add_argument("out", help="new folder, outside the repository (no TRAIN/TEST/SA1/SA2/.WAV in its path)")
    s = sub.add_parser("score", help="score the peer harness's hyp_test.tsv per corpus")
    s.add_argument("corpus", help="the folder 'write' made")
    s.add_argument("sb_out", help="the peer harness's OUT folder")
    s.add_argument("--recipe", default="recipes/real_en/recorded.yaml", help="for the corpora's types")
    s.add_argument("--exp", default="", help="lstm-asr experiment to print beside it")
    args = ap.parse_args(argv)
    if args.cmd == "write":
        out = Path(args.out).resolve()
        check_path(str(out))
        recipe = str(Path(args.recipe).resolve())
        os.chdir(args.root)
        counts = write_corpus(recipe_splits(recipe), out)
        print(json.dumps(counts, indent=1))
        return
    from lstm_asr.recipe import corpora_of, load_recipe

    recipe = load_recipe(str(Path(args.recipe).resolve()))
    types = {c.name: c.type for c in corpora_of(recipe)}
    mapping = read_mapping(Path(args.corpus))
    hyps = {}
    for line in (Path(args.sb_out) / "hyp_test.tsv").read_text().splitlines():
        key, _, hyp = line.partition("\t")
        hyps[key] = hyp.split()
    result: dict[str, Any] = {"speechbrain": {"test_corpora": score_hyps(mapping, hyps, types),
                                              **sb_log(Path(args.sb_out))}}
    if args.exp:
        result["lstm_asr"] = lstm_asr_figures(Path(args.exp))
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
