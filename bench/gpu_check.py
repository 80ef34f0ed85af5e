"""One prepared check for a machine with a GPU: versions, cuDNN BLSTM speed per precision, and the real trainer.

Run: ``.venv/bin/python bench/gpu_check.py [--out DIR] [--iters 20] [--work /tmp/gpu_check]``; on a CPU-only
machine it prints a message and exits 0, and ``--cpu-smoke`` runs the whole script on the CPU at toy sizes (to
check the script itself; its figures mean nothing). Prints JSON (also written to ``DIR/gpu_check.json``) and a table:

* versions: torch, CUDA, cuDNN, the GPU;
* ``bare``: forward + CTC + backward + Adam step of a 3x250 BLSTM (123 inputs, 62 outputs; nn.LSTM = cuDNN), batches
  of 32 x 300 frames, in fp32 and under bf16 / fp16 autocast (fp16 with a GradScaler): frames/s, peak GPU memory;
* ``trainer``: ``lstm_asr.training.train.train`` for 2 epochs on a
  generated TIMIT-layout corpus (``tests/fake_timit.py``)
  with ``training.device=cuda`` per precision: its own epoch-2 frames/s, peak GPU memory, whether the loss
  decreased (epoch 2 mean below epoch 1, and the last logged steps below the first), the dev PER; and whether the
  GPU-trained model decodes on the CPU (``Recognizer.load`` maps checkpoints to the CPU).

A failure in one configuration (e.g. a precision the GPU lacks) is recorded as its ``error`` and the rest runs on.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib  # first: it puts tests/ (fake_timit) on sys.path
import torch
import yaml
from fake_timit import make_fake_timit

from lstm_asr.nn.model import BLSTMCTC, ModelConfig, ctc_loss
from lstm_asr.training.devices import MixedPrecision


def versions(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                            "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    bf16_supported=torch.cuda.is_bf16_supported())
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def bare_step_speed(device: torch.device, precision: str, hidden: int, layers: int, batch: int, frames: int,
                    iters: int) -> dict[str, Any]:
    """frames/s of forward + CTC + backward + Adam on one fixed random batch (cuDNN LSTM on CUDA)."""
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=123, num_classes=62, hidden=hidden, layers=layers)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    amp = MixedPrecision(precision, device)
    feats = torch.randn(batch, frames, 123, device=device)
    lengths = torch.full((batch,), frames, dtype=torch.long, device=device)
    target_lengths = torch.full((batch,), frames // 8, dtype=torch.long)
    targets = torch.randint(1, 62, (int(target_lengths.sum()),), device=device)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with amp.autocast():
            loss = ctc_loss(model(feats, lengths), lengths, targets, target_lengths)
        amp.backward(loss)
        amp.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        amp.step(opt)
        return loss

    for _ in range(3):  # warm-up: cuDNN plans, allocator (before the peak is reset, so not in it)
        step()
    sync(device)
    reset_peak(device)
    last: list[torch.Tensor] = []  # the last timed step's loss, reported below

    def timed_step() -> None:
        last[:] = [step()]
        sync(device)  # CUDA runs asynchronously: the step is over only when the device has caught up

    med = benchlib.median_ms(timed_step, iters, warmup=0) / 1000.0
    loss = last[0]
    return {"frames_per_s": round(batch * frames / med), "ms_per_step": round(med * 1000, 2),
            "peak_mib": peak_mib(device), "loss_dtype": str(loss.dtype), "final_loss": round(float(loss), 3)}


def trainer_run(work: Path, corpus: Path, device: torch.device, precision: str, hidden: int, layers: int,
                max_batch: int) -> dict[str, Any]:
    """Two epochs of the real trainer on ``device``; figures from its own metrics.jsonl."""
    from lstm_asr.recipe import load_recipe
    from lstm_asr.training.train import train

    recipe_path = work / f"{precision}.yaml"
    recipe_path.write_text(yaml.safe_dump({
        "corpus": {"path": str(corpus), "dev_split": "dev", "test_split": "test"},
        "features": {"store": str(work / "features")},
        "model": {"hidden": hidden, "layers": layers},
        "training": {"optimizer": "adam", "lr": 1e-3, "max_epochs": 2, "patience": 5, "max_batch": max_batch,
                     "max_frames": 10**6, "log_every": 1, "checkpoint_every": 0, "device": device.type,
                     "precision": precision, "seed": 0},
    }))
    exp = work / f"exp_{precision}"
    reset_peak(device)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        results = train(load_recipe(recipe_path), exp, show_progress=False)
    wall = time.perf_counter() - start
    records = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    steps = [r["loss"] for r in records if r["kind"] == "step"]
    k = max(1, len(steps) // 5)
    first, last = statistics.mean(steps[:k]), statistics.mean(steps[-k:])
    out: dict[str, Any] = {
        "steps": len(steps), "epoch2_frames_per_s": epochs[-1]["frames_per_s"],
        "epoch_seconds": [e["epoch_seconds"] for e in epochs], "wall_s": round(wall, 1), "peak_mib": peak_mib(device),
        "train_loss": [e["train_loss"] for e in epochs], "first_steps_loss": round(first, 3),
        "last_steps_loss": round(last, 3),
        "loss_decreased": epochs[-1]["train_loss"] < epochs[0]["train_loss"] and last < first,
        "dev_per": results["dev"]["per"], "skipped_steps": results["skipped_steps"],
    }
    # The GPU-trained checkpoint must decode on the CPU.
    from lstm_asr.recognition.recognizer import Recognizer

    rec = Recognizer.load(exp)
    feats = torch.randn(120, 123)
    lp = rec.model(feats.unsqueeze(0), torch.tensor([120]))
    out["cpu_decode_ok"] = bool(next(rec.model.parameters()).device.type == "cpu" and torch.isfinite(lp).all())
    return out


def guarded(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a check script records each failure and carries on
        tail = traceback.format_exc().strip().splitlines()[-3:]
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                "trace": tail}


def table_rows(section: dict[str, dict[str, Any]],
               cells: Callable[[dict[str, Any]], tuple[object, ...]]) -> list[tuple[object, ...] | str]:
    """Table rows of one section, a precision each: its cells, or a line with its error where the run failed."""
    return [f"{p:<10} error: {r['error']}" if "error" in r else (p, *cells(r)) for p, r in section.items()]


def bare_cells(r: dict[str, Any]) -> tuple[object, ...]:
    """The bare-step table's figures of one precision (peak memory as text: None on the CPU)."""
    return r["frames_per_s"], r["ms_per_step"], str(r["peak_mib"])


def trainer_cells(r: dict[str, Any]) -> tuple[object, ...]:
    """The trainer table's figures of one precision."""
    losses = " -> ".join(f"{x:.2f}" for x in r["train_loss"])
    return r["epoch2_frames_per_s"], str(r["peak_mib"]), losses, str(r["loss_decreased"]), r["dev_per"]


def main() -> int:
    ap = benchlib.parser(__doc__, threads=None, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="run on the CPU at toy sizes (checks the script)")
    ap.add_argument("--iters", type=int, default=20, help="timed steps per bare configuration")
    ap.add_argument("--speakers", type=int, default=24, help="training speakers of the generated corpus")
    ap.add_argument("--utts", type=int, default=10, help="utterances per speaker")
    ap.add_argument("--work", default="/tmp/gpu_check")
    ap.add_argument("--out", default="", help="folder for gpu_check.json")
    args = ap.parse_args()
    benchlib.start(args)

    if args.cpu_smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)
        hidden, layers, batch, frames, iters = 16, 2, 4, 50, 2
        speakers, utts, max_batch = 2, 2, 2
        precisions = ["fp32", "bf16"]  # fp16 autocast needs CUDA (a clear error on the CPU)
    elif not torch.cuda.is_available():
        benchlib.emit({"cuda_available": False, "torch": torch.__version__, "cuda": torch.version.cuda}, args.json,
                      indent=None)
        print("gpu_check: no CUDA device here: nothing to measure (--cpu-smoke runs the script on the CPU)")
        return 0
    else:
        device = torch.device("cuda", 0)
        hidden, layers, batch, frames, iters = 250, 3, 32, 300, args.iters
        speakers, utts, max_batch = args.speakers, args.utts, 32
        precisions = ["fp32", "bf16", "fp16"]

    report: dict[str, Any] = {"versions": versions(device), "cpu_smoke": args.cpu_smoke,
                              "bare_config": {"hidden": hidden, "layers": layers, "batch": batch, "frames": frames,
                                              "iters": iters},
                              "bare": {}, "trainer": {}}
    for p in precisions:
        report["bare"][p] = guarded(bare_step_speed, device, p, hidden, layers, batch, frames, iters)
    work = Path(args.work)
    corpus = work / "TIMIT"
    if not (corpus / "TRAIN").is_dir():
        make_fake_timit(corpus, n_train=speakers, n_dev=2, n_core=2, utts_per_speaker=utts)
    for p in precisions:
        report["trainer"][p] = guarded(trainer_run, work, corpus, device, p, hidden, layers, max_batch)

    benchlib.emit(report, args.json)
    if args.out:  # --out DIR (older than --json FILE) keeps its fixed file name, which device runs fetch
        benchlib.write_json(report, Path(args.out) / "gpu_check.json")
    v = report["versions"]
    print(f"\ntorch {v['torch']}, CUDA {v['cuda']}, cuDNN {v['cudnn']}, {v.get('gpu', v['device'])}")
    print(f"bare step, {layers}x{hidden} BLSTM, batch {batch} x {frames} frames:")
    benchlib.print_table(table_rows(report["bare"], bare_cells),
                         [("precision", "<10"), ("frames/s", ">11,"), ("ms/step", ">9"), ("peak MiB", ">9")])
    print("trainer, 2 epochs on the generated corpus:")
    benchlib.print_table(table_rows(report["trainer"], trainer_cells),
                         [("precision", "<10"), ("frames/s", ">11,.0f"), ("peak MiB", ">9"), ("loss e1 -> e2", ">16"),
                          ("decreased", ">9"), ("dev PER", ">8.2f")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
