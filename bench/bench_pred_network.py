"""PER of the stateless prediction network (``model.pred_context: 2``, Ghodsi et al. 2020) against the LSTM one, on a
small generated TIMIT-layout corpus (tests/fake_timit.py: 16 training speakers x 4 utterances, 6 dev and 6 core-test
speakers; 40 mel bins without energy, as sherpa-onnx's front end gives), both transducers initialised from the same
CTC encoder trained first, the same recipe otherwise (2x48 BLSTM, 2 frames stacked, prediction 32, joint 32, Adam
3e-3, 20 epochs, greedy with max_symbols 3), one run per seed. Prints a JSON object and a table of dev and test PER.

Run: ``.venv/bin/python bench/bench_pred_network.py [--seeds 4] [--work /tmp/pred_network]`` (about 2 minutes on
one thread).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import benchlib
import yaml
from fake_timit import make_fake_timit

from lstm_asr.recipe import load_recipe
from lstm_asr.training.train import train


def recipe(work: Path, corpus: Path, name: str, seed: int = 0, **sections: dict):
    data = {"corpus": {"path": str(corpus)}, "features": {"store": str(work / "feats"), "use_energy": False},
            "model": {"hidden": 48, "layers": 2, "stack_frames": 2, "subsample": 2},
            "training": {"lr": 0.02, "max_epochs": 25, "max_frames": 100000, "max_batch": 4, "patience": 30,
                         "log_every": 1000, "threads": 1, "seed": seed}}
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path)


def main() -> None:
    ap = benchlib.parser(__doc__, threads=None)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--work", default="/tmp/pred_network")
    args = ap.parse_args()
    work = Path(args.work)
    corpus = work / "TIMIT"
    if not corpus.exists():
        make_fake_timit(corpus, n_train=16, n_dev=6, n_core=6, utts_per_speaker=4, seed=1)
    ctc = work / "ctc"
    if not (ctc / "results.json").exists():
        train(recipe(work, corpus, "ctc"), ctc, show_progress=False)
    runs: dict[str, list[dict]] = {"lstm": [], "stateless2": []}
    for seed in range(args.seeds):
        for name, pred in (("lstm", {}), ("stateless2", {"pred_context": 2})):
            exp = work / f"{name}_s{seed}"
            if not (exp / "results.json").exists():
                train(recipe(work, corpus, f"{name}_s{seed}", seed,
                             model={"head": "transducer", "pred_hidden": 32, "joint_dim": 32, **pred},
                             training={"max_epochs": 20, "init_encoder_from": str(ctc / "best.pt"),
                                       "optimizer": "adam", "lr": 0.003}, decoding={"max_symbols": 3}),
                      exp, show_progress=False)
            r = json.loads((exp / "results.json").read_text())
            runs[name].append({"seed": seed, "dev": r["dev"]["per"], "test": r["test"]["per"],
                               "best_epoch": r.get("best_epoch")})
    ctc_r = json.loads((ctc / "results.json").read_text())
    result = {"config": benchlib.config(args), "ctc": {"dev": ctc_r["dev"]["per"], "test": ctc_r["test"]["per"]},
              "runs": runs, "mean": {n: {s: round(statistics.mean(x[s] for x in v), 2) for s in ("dev", "test")}
                                     for n, v in runs.items()}}
    benchlib.emit(result, args.json)
    rows = [(n, r["seed"], r["dev"], r["test"], r["best_epoch"]) for n, v in runs.items() for r in v]
    rows += [(f"{n} mean", "-", m["dev"], m["test"], "-") for n, m in result["mean"].items()]
    benchlib.print_table(rows, [("prediction", "<16"), ("seed", ">5"), ("dev PER", ">8.2f"), ("test PER", ">9.2f"),
                                ("best epoch", ">11")])


if __name__ == "__main__":
    main()
