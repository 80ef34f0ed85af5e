"""The ``lstm-asr`` command line: a thin typer layer over the library.

Every user-caused problem arrives here as an :class:`~lstm_asr.errors.LstmAsrError` and is printed as one line
(``error: <file>: <problem>``) with exit status 1; no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from lstm_asr.errors import FIXABLE_ERRNOS, LstmAsrError, os_error_problem, reporting_write_errors

# ``--help`` lists the commands in the order a user meets them (typer's own order is definition order, with command
# groups last); a command missing here comes after these.
COMMAND_ORDER = ("download", "synth", "corpus", "prep", "train", "average", "decode", "stream", "evaluate", "align",
                 "lm", "report", "plot", "study", "export", "serve", "render")


class PipelineOrder(TyperGroup):
    """The top-level command group, listing its commands in :data:`COMMAND_ORDER`."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))


app = typer.Typer(cls=PipelineOrder, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train and run bidirectional LSTM + CTC recognisers (speech and online handwriting).")
synth_app = typer.Typer(no_args_is_help=True, help="Generate demo corpora in the real corpora's layouts.")
app.add_typer(synth_app, name="synth")

RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: key.path=value (repeatable).")]


@synth_app.command("timit")
def synth_timit(
    out: Annotated[Path, typer.Argument(help="Folder to write the TIMIT-layout corpus into.")],
    minutes: Annotated[float, typer.Option(help="Approximate total audio, in minutes.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same corpus).")] = 0,
    jobs: Annotated[int, typer.Option(help="Parallel synthesis processes.")] = 2,
    size: Annotated[str, typer.Option(help="'timit': TIMIT's own shape (462 training speakers, 168 test speakers: "
                                           "24 core + 50 dev + 94 more; 8 utterances each besides SA), ignoring "
                                           "--minutes; '' (default): sized by --minutes.")] = "",
    engines: Annotated[str, typer.Option(help="Comma-separated synthesisers: festival, flite, espeak (default: "
                                              "festival,flite; with --size timit all three).")] = "",
    test_talkers: Annotated[str, typer.Option(help="Comma-separated talkers held out of TRAIN for TEST (default: "
                                                   "ked, and espm7,espf5 when espeak is used).")] = "",
    train_engines: Annotated[str, typer.Option(help="Comma-separated engines TRAIN may use (default: all of "
                                                    "--engines); festival,flite holds espeak out of training.")] = "",
) -> None:
    """Generate a TIMIT-layout corpus (SPHERE audio, .PHN/.WRD/.TXT) from festival, flite and espeak-ng voices."""
    from data_prep.synth_timit import generate_for_cli

    print(generate_for_cli(out, minutes=minutes, seed=seed, jobs=jobs, size=size, engines=engines,
                           test_talkers=test_talkers, train_engines=train_engines))


@synth_app.command("ondb")
def synth_ondb(
    out: Annotated[Path, typer.Argument(help="Folder to write the IAM-OnDB-layout corpus into.")],
    lines: Annotated[int, typer.Option(help="Text lines to write (8 per form).")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same corpus).")] = 0,
) -> None:
    """Generate an IAM-OnDB-layout handwriting corpus (stroke XML, ascii, split files) from Hershey fonts."""
    from data_prep.synth_ondb import generate_ondb_corpus

    print(generate_ondb_corpus(out, lines=lines, seed=seed, progress=True))


corpus_app = typer.Typer(no_args_is_help=True, help="Corpora as other toolkits' manifests.")
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("export")
def corpus_export(
    recipe: RecipeArg,
    out: Annotated[Path, typer.Argument(help="Folder to write the manifests into.")],
    fmt: Annotated[str, typer.Option("--format", help="lhotse (recordings, supervisions, cuts .jsonl.gz per "
                                                      "split), kaldi (a data dir per split) or nemo (<split>.jsonl).")
                   ] = "lhotse",
    convert_audio: Annotated[Path | None, typer.Option(help="Write every utterance's audio (its part, its channel) "
                                                            "as 16-bit WAV here and name those files: for Kaldi's "
                                                            "binaries, which read RIFF WAV only (not TIMIT's "
                                                            "SPHERE).")] = None,
    set_: SetOpt = None,
) -> None:
    """Write the recipe's corpus (any corpus.type with audio) as Lhotse, Kaldi or NeMo manifests, per split."""
    from data_prep.corpora import open_source
    from data_prep.corpus_export import export_corpus
    from lstm_asr.data.prep import ensure_corpus
    from lstm_asr.recipe import load_recipe

    r = load_recipe(recipe, set_ or [])
    source = open_source(r.corpus.type, ensure_corpus(r), r.corpus)
    splits = [r.corpus.train_split, r.corpus.dev_split, r.corpus.test_split]
    for report in export_corpus(source, splits, fmt, out, convert_audio):
        print(report.summary())
    print(f"wrote {fmt} manifests to {out}")


@app.command()
def download(
    name: Annotated[str, typer.Argument(help="arctic (the seven CMU ARCTIC voices), arctic-<voice>, kathleen, "
                                             "speechocean762, librispeech-<subset> (dev-clean, ...).")],
    out: Annotated[Path, typer.Argument(help="Folder to unpack the corpus into (archives go to OUT/.downloads).")],
    from_: Annotated[Path | None, typer.Option("--from", help="A local archive, or a folder holding it or an "
                                                              "unpacked copy, instead of downloading.")] = None,
) -> None:
    """Fetch a recorded corpus (checked, resumable) and unpack it into the layout its reader expects."""
    from data_prep.download import download as run_download

    for line in run_download(name, out, from_):
        print(line)


@app.command()
def render(
    ink: Annotated[Path, typer.Argument(help="Pen strokes: IAM-OnDB stroke XML or InkML.")],
    out: Annotated[Path, typer.Argument(help="PNG file to write.")],
    model: Annotated[Path | None, typer.Option(help="Experiment folder: recognise the ink and write the text "
                                                    "beneath it.")] = None,
) -> None:
    """Draw pen strokes as a PNG, one colour per stroke, with the recognised (or transcribed) text beneath."""
    from lstm_asr.recognition.ink_decode import render_file

    print(render_file(ink, out, model))


@app.command()
def prep(
    recipe: RecipeArg,
    set_: SetOpt = None,
    force: Annotated[bool, typer.Option(help="Recompute even if the stored features are up to date.")] = False,
    jobs: Annotated[int, typer.Option(help="Feature extraction processes (default: one per core).")] = 0,
    shard_size: Annotated[int, typer.Option(min=1, help="Utterances per saved shard: an interrupted prep resumes "
                                                        "from its finished shards.")] = 200,
) -> None:
    """Compute features and labels for the recipe's splits and store them (generating the corpus if needed)."""
    from lstm_asr.data.prep import prep as run_prep
    from lstm_asr.data.prep import store_dir
    from lstm_asr.recipe import load_recipe

    r = load_recipe(recipe, set_ or [])
    for report in run_prep(r, force=force, jobs=jobs or None, shard_size=shard_size):
        print(report.summary())
    print(f"features stored in {store_dir(r)}")


@app.command()
def train(
    recipe: RecipeArg,
    out: Annotated[Path | None, typer.Option(help="Experiment folder (default: exp/<recipe name>).")] = None,
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue exactly from the experiment's last.pt, if any.")] = False,
    force: Annotated[bool, typer.Option(help="With --resume: accept a recipe that differs from the checkpoint's.")]
    = False,
) -> None:
    """Train a BLSTM-CTC model from a recipe; writes checkpoints, metrics.jsonl and results.json."""
    from data_prep.corpora import resolve_units
    from lstm_asr.recipe import load_recipe, primary_corpus
    from lstm_asr.training.train import train as run_train

    r = load_recipe(recipe, set_ or [])
    exp = out or Path("exp") / r.name
    results = run_train(r, exp, resume=resume, force=force)
    from lstm_asr.training.distributed import is_main_process

    if not is_main_process():  # under torchrun, rank 0 reports
        return
    c = primary_corpus(r)
    metric = results.get("metric") or ("WER" if resolve_units(c.type, c.units) in ("chars", "bpe") else "PER")
    # One line per split; a multi-corpus recipe's pooled splits, then each corpus's own (results.json "dev_corpora",
    # "test_corpora").
    rows = [(split, results[split]) for split in ("dev", "test")]
    rows += [(f"{split} {name}", s) for split in ("dev", "test") for name, s in results.get(f"{split}_corpora",
                                                                                             {}).items()]
    for label, s in rows:
        others = "".join(f", {k.upper()} {s[k.lower()]:.2f}%" for k in ("wer",) if k in s and metric != "WER")
        print(f"{label} {metric} {s['per']:.2f}% (N={s['ref_tokens']} S={s['sub']} D={s['dele']} "
              f"I={s['ins']}, {s['utterances']} utterances){others}")
    print(f"scoring: {results['scoring']}")
    print(f"experiment: {exp}")


@app.command()
def report(
    exps: Annotated[list[Path], typer.Argument(help="Experiment folders (holding results.json).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Markdown file to write.")] = Path("report.md"),
) -> None:
    """Print and write a markdown table: recipe, parameters, epochs, hours, dev/test PER, the paper's PER."""
    from lstm_asr.scoring.report import report_table

    table = report_table(exps)
    try:
        output.write_text(table)
    except OSError as exc:
        raise LstmAsrError(f"{output}: cannot write ({exc.strerror or exc})") from None
    print(table, end="")


@app.command()
def plot(
    exps: Annotated[list[Path], typer.Argument(help="Experiment folders (holding metrics.jsonl), finished or not.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Image to write: .png, .svg or .pdf.")] = Path(
        "curves.png"),
    steps: Annotated[bool, typer.Option(help="Also draw the per-step batch loss, smoothed.")] = False,
    smooth: Annotated[int, typer.Option(help="With --steps: moving average over this many logged steps.")] = 10,
) -> None:
    """Draw training loss and dev error rate (PER/CER/WER) per epoch; several experiments on one figure."""
    from lstm_asr.scoring.plot import check_output, draw_curves, read_experiments

    check_output(output)
    curves = read_experiments(exps)
    for exp, c in zip(exps, curves, strict=True):
        if c.skipped:
            print(f"{exp / 'metrics.jsonl'}: skipped {c.skipped} corrupt lines (first: line {c.first_skipped})",
                  file=sys.stderr)
    draw_curves(curves, output, steps=steps, smooth_window=smooth)
    print(f"wrote {output}: {len(curves)} experiments, " + ", ".join(f"{c.name} {len(c.epochs)} epochs"
                                                                     for c in curves))


@app.command()
def study(
    recipe: RecipeArg,
    vary: Annotated[list[str] | None, typer.Option("--vary", help="A recipe key and its values: key=a,b,c "
                                                             "(repeatable: the grid is their product; the first "
                                                             "setting is the reference).")] = None,
    seeds: Annotated[int, typer.Option(help="Runs per setting (training.seed = the recipe's + 0, 1, ...).")] = 3,
    jobs: Annotated[int, typer.Option(help="Runs trained at once (each a subprocess; give them "
                                           "training.threads=1 on a small machine).")] = 1,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="Study folder (default: exp/study_<recipe name>).")] = None,
) -> None:
    """Train a grid of settings x seeds (resumable: run it again to continue), then write a table and a plot of
    mean and spread per setting, with Welch's t-test against the first setting."""
    from lstm_asr.training.study import plan_study, run_study

    plan = plan_study(recipe, vary or [], seeds, set_ or [], out)
    table, figure = run_study(plan, jobs)
    print()
    print(table, end="")
    print(f"study: {plan.out} (table.md, summary.json{', ' + figure.name if figure else ''}; runs in "
          f"{plan.out / 'runs'})" + ("" if figure else " -- no plot: pip install 'lstm-asr[plot]'"))


LmOpt = Annotated[Path | None, typer.Option("--lm", help="ARPA language model (default: the recipe's decoding.lm).")]
LexiconOpt = Annotated[Path | None, typer.Option(help="Lexicon (word tok tok ...) for word decoding.")]
LmWeightOpt = Annotated[float | None, typer.Option(help="LM weight (default: the recipe's, else 1).")]
WordScoreOpt = Annotated[float | None, typer.Option(help="Insertion score per word/token (default: recipe's, else 0).")]


@app.command()
def decode(
    files: Annotated[list[Path] | None, typer.Argument(help="Audio files, folders of them, or list files "
                                                            "(.lst/.scp/.txt). With --stream: one file, - for "
                                                            "standard input, or nothing for the microphone.")]
    = None,
    model: Annotated[Path | None, typer.Option(help="Experiment folder, checkpoint or exported model.pt "
                                                    "(default: latest experiment).")] = None,
    beam: Annotated[int | None, typer.Option(help="Beam width; 1 = greedy (default: the recipe's).")] = None,
    nbest: Annotated[int, typer.Option(help="Hypotheses to output per file, with scores.")] = 1,
    lm: LmOpt = None,
    lexicon: LexiconOpt = None,
    lm_weight: LmWeightOpt = None,
    word_score: WordScoreOpt = None,
    batch_size: Annotated[int, typer.Option(help="Files per network batch.")] = 16,
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default; 1 is much faster on a busy "
                                              "machine).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines with per-token times (and N-best).")] = False,
    window_seconds: Annotated[float, typer.Option(help="Recordings longer than a window plus its two contexts are "
                                                       "decoded window by window in bounded memory; 0 = never.")]
    = 30.0,
    context_seconds: Annotated[float, typer.Option(min=0.0, help="Audio each side of a window that the network "
                                                                 "reads but whose outputs are dropped.")] = 3.0,
    stream: Annotated[bool, typer.Option("--stream", help="Decode as the audio arrives (microphone, - for stdin: "
                                                          "16-bit PCM or WAV at 16 kHz mono, or a file): partial "
                                                          "hypotheses as they change, a final result per "
                                                          "segment.")] = False,
    realtime: Annotated[bool, typer.Option("--realtime", help="With --stream and a file: play it at real time.")]
    = False,
    chunk_frames: Annotated[int, typer.Option(min=0, help="With --stream: chunk size in 10 ms frames (0: the "
                                                          "model's own, else 40).")] = 0,
    right_context: Annotated[int, typer.Option(min=-1, help="With --stream: look-ahead frames per chunk (-1: the "
                                                            "model's own; for a whole-utterance model, the chunk "
                                                            "size).")] = -1,
    endpoint_seconds: Annotated[float, typer.Option(min=0.0, help="With --stream: silence that ends a segment "
                                                                  "(0: only the end of input).")] = 1.0,
    silence_db: Annotated[float, typer.Option(help="With --stream: level (dBFS) below which a 10 ms frame is "
                                                   "silence.")] = -45.0,
    device: Annotated[str | None, typer.Option(help="With --stream and no file: the microphone (a sounddevice "
                                                    "name or index).")] = None,
    quantize: Annotated[str, typer.Option(help="int8: decode with dynamic int8 quantization of the LSTM/GRU and "
                                               "linear layers.")] = "",
) -> None:
    """Decode audio files and print one transcript per file (or N-best lists); a summary goes to stderr.

    With --stream: decode live from the microphone, standard input or a file (the same as lstm-asr stream)."""
    if stream or realtime:
        from lstm_asr.recognition.stream_decode import decode_stream_command

        decode_stream_command(files or [], model=model, beam=beam, lm=lm, lexicon=lexicon, lm_weight=lm_weight,
                              word_score=word_score, threads=threads, as_json=as_json, realtime=realtime,
                              chunk_frames=chunk_frames, right_context=right_context,
                              endpoint_seconds=endpoint_seconds, silence_db=silence_db, device=device,
                              quantize=quantize)
        return
    if not files:
        raise LstmAsrError("no audio given: name files, folders or list files (or use --stream)")
    from lstm_asr.decoding.search import SearchConfig
    from lstm_asr.recognition.batch_decode import (
        Summary,
        decode_files,
        expand_inputs,
        result_dict,
        stderr_progress,
        text_lines,
    )
    from lstm_asr.recognition.long_decode import WindowConfig
    from lstm_asr.recognition.recognizer import Recognizer, find_latest_experiment

    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    exp = model or find_latest_experiment()
    rec = Recognizer.load(exp).quantize(quantize)
    if rec.input_type == "ink":  # pen strokes (IAM-OnDB XML, InkML): recognition/ink_decode.py
        from lstm_asr.recognition.ink_decode import decode_ink_files

        decode_ink_files(rec, files, beam=beam or 1, as_json=as_json)
        return
    cfg = SearchConfig.for_experiment(exp, beam=beam, nbest=nbest, lm=lm, lexicon=lexicon, lm_weight=lm_weight,
                                      word_score=word_score)
    searcher = rec.searcher(cfg)
    inputs = expand_inputs(files)
    summary = Summary()
    advance, close = stderr_progress(len(inputs))
    units = rec.units
    shift = rec.frame_seconds  # frame shift x the model's frame-rate reduction
    try:
        for d in decode_files(rec, inputs, searcher, summary, batch_size=batch_size,
                              on_error=lambda f, msg: print(f"error: {msg}", file=sys.stderr), progress=advance,
                              window=WindowConfig(window_seconds, context_seconds)):
            if as_json:
                print(json.dumps(result_dict(d, rec.tokens, units, shift, nbest)), flush=True)
            else:
                print("\n".join(text_lines(d, rec.tokens, units, nbest)), flush=True)
    finally:
        close()
    print(f"summary: {summary.line()} [{searcher.describe()}]", file=sys.stderr)
    if summary.failed:
        raise LstmAsrError(f"{len(summary.failed)} of {summary.files} files could not be decoded")


@app.command()
def stream(
    source: Annotated[Path | None, typer.Argument(help="An audio file, - for standard input (16-bit PCM or WAV at 16 "
                                                       "kHz mono), or nothing for the microphone.")] = None,
    model: Annotated[Path | None, typer.Option(help="Experiment folder, checkpoint or exported model.pt "
                                                    "(default: latest experiment).")] = None,
    beam: Annotated[int | None, typer.Option(help="Beam width; 1 = greedy (default: the recipe's).")] = None,
    lm: LmOpt = None,
    lexicon: LexiconOpt = None,
    lm_weight: LmWeightOpt = None,
    word_score: WordScoreOpt = None,
    threads: Annotated[int, typer.Option(help="torch threads (0: one, which keeps a stream's latency low).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: one object per partial or final update, with "
                                                         "per-token times and latency.")] = False,
    realtime: Annotated[bool, typer.Option("--realtime", help="Play a file at real time.")] = False,
    chunk_frames: Annotated[int, typer.Option(min=0, help="Chunk size in 10 ms frames (0: the model's own, else "
                                                          "40).")] = 0,
    right_context: Annotated[int, typer.Option(min=-1, help="Look-ahead frames per chunk (-1: the model's own; for "
                                                            "a whole-utterance model, the chunk size).")] = -1,
    endpoint_seconds: Annotated[float, typer.Option(min=0.0, help="Silence that ends a segment (0: only the end of "
                                                                  "input).")] = 1.0,
    silence_db: Annotated[float, typer.Option(help="Level (dBFS) below which a 10 ms frame is silence.")] = -45.0,
    device: Annotated[str | None, typer.Option(help="Without a source: the microphone (a sounddevice name or "
                                                    "index).")] = None,
    quantize: Annotated[str, typer.Option(help="int8: decode with dynamic int8 quantization of the LSTM/GRU and "
                                               "linear layers.")] = "",
) -> None:
    """Decode as the audio arrives, from the microphone, standard input or a file: partial hypotheses as they
    change, a final result per segment (the same as decode --stream)."""
    from lstm_asr.recognition.stream_decode import decode_stream_command

    decode_stream_command([source] if source is not None else [], model=model, beam=beam, lm=lm, lexicon=lexicon,
                          lm_weight=lm_weight, word_score=word_score, threads=threads, as_json=as_json,
                          realtime=realtime, chunk_frames=chunk_frames, right_context=right_context,
                          endpoint_seconds=endpoint_seconds, silence_db=silence_db, device=device, quantize=quantize)


@app.command()
def export(
    exp: Annotated[Path, typer.Argument(help="Experiment folder (its best.pt) or checkpoint.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="File to write.")] = Path("model.pt"),
    fmt: Annotated[str, typer.Option("--format", help="torchscript (waveform in), onnx (features in) or sherpa-onnx "
                                                      "(a folder for sherpa-onnx: -o names it; a model that "
                                                      "streams also gets OUT/online/).")] = "torchscript",
    streaming: Annotated[bool, typer.Option("--streaming", help="TorchScript with initial_state(), step(samples, "
                                                                "state) and finish(state): stream without "
                                                                "lstm-asr. With --format sherpa-onnx: the "
                                                                "streaming model is required.")] = False,
    quantize: Annotated[str, typer.Option(help="int8: dynamic int8 quantization of the LSTM/GRU and linear "
                                               "layers.")] = "",
    chunk_frames: Annotated[int, typer.Option(min=0, help="With --streaming or --format sherpa-onnx: chunk size in "
                                                          "input frames (0: the model's own, else 40).")] = 0,
    right_context: Annotated[int, typer.Option(min=-1, help="With --streaming: look-ahead frames (-1: the model's "
                                                            "own, or the chunk size).")] = -1,
) -> None:
    """Write a self-contained model: TorchScript with the feature pipeline and token list, or ONNX (network only)."""
    from lstm_asr.export.onnx_export import export_onnx
    from lstm_asr.export.sherpa_folder import export_sherpa_folder
    from lstm_asr.export.torchscript import export_torchscript
    from lstm_asr.export.transducer_torchscript import export_transducer, is_transducer_checkpoint

    if fmt not in ("torchscript", "onnx", "sherpa-onnx"):
        raise LstmAsrError(f"unknown --format {fmt!r} (use torchscript, onnx or sherpa-onnx)")
    if (fmt == "onnx" and streaming) or (fmt != "torchscript" and quantize):
        raise LstmAsrError(f"--streaming and --quantize write TorchScript (drop --format {fmt})")
    if fmt == "sherpa-onnx" and right_context >= 0:
        raise LstmAsrError("--right-context: a sherpa-onnx streaming model looks ahead as it was trained (drop it)")
    if fmt == "sherpa-onnx":  # a folder: offline model, streaming one in online/ (lstm_asr/export/sherpa_folder.py)
        path = export_sherpa_folder(exp, out, chunk_frames, streaming)
    elif is_transducer_checkpoint(exp):  # transducers: their own export (lstm_asr/export/transducer_torchscript.py)
        if streaming or quantize:
            raise LstmAsrError("--streaming and --quantize export CTC models; a transducer exports whole")
        path = export_transducer(exp, out, fmt)
    elif fmt == "torchscript":
        path = export_torchscript(exp, out, streaming=streaming, quantize=quantize, chunk_frames=chunk_frames,
                                  right_context=right_context)
    else:
        path = export_onnx(exp, out)
    kind = ", ".join(k for k in (fmt, "streaming" if streaming else "", quantize) if k)
    print(f"wrote {path} ({kind})")


@app.command()
def serve(
    exp: Annotated[Path, typer.Argument(help="Experiment folder, checkpoint, or a file from export --streaming.")],
    host: Annotated[str, typer.Option(help="Address to listen on (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    beam: Annotated[int | None, typer.Option(help="Beam width; 1 = greedy (default: the recipe's).")] = None,
    chunk_frames: Annotated[int, typer.Option(min=0, help="Chunk size in 10 ms frames (0: the model's own, else "
                                                          "40).")] = 0,
    right_context: Annotated[int, typer.Option(min=-1, help="Look-ahead frames (-1: the model's own, or the chunk "
                                                            "size).")] = -1,
    endpoint_seconds: Annotated[float, typer.Option(min=0.0, help="Silence that ends a segment.")] = 1.0,
    quantize: Annotated[str, typer.Option(help="int8: dynamic int8 quantization of the network.")] = "",
    max_connections: Annotated[int, typer.Option(min=1, help="Connections open at once.")] = 32,
    max_seconds: Annotated[float, typer.Option(min=1.0, help="Longest a connection may stay open.")] = 900.0,
) -> None:
    """Serve a page that recognises the microphone or a dropped file live (WebSocket, localhost by default)."""
    from lstm_asr.decoding.search import SearchConfig
    from lstm_asr.recognition.recognizer import Recognizer
    from lstm_asr.recognition.stream_recognizer import StreamingRecognizer, StreamSettings
    from lstm_asr.serving.server import ServerLimits
    from lstm_asr.serving.server import serve as run_server

    settings = StreamSettings(chunk_frames, right_context, endpoint_seconds,
                              search=SearchConfig.for_experiment(exp, beam=beam))
    rec = StreamingRecognizer(Recognizer.load(exp).quantize(quantize), settings)
    run_server(rec, host, port, ServerLimits(max_connections=max_connections, max_seconds=max_seconds))


@app.command()
def evaluate(
    exp: Annotated[Path, typer.Argument(help="Experiment folder.")],
    split: Annotated[str, typer.Option(help="Split to score: train, dev or test (core test).")] = "test",
    beam: Annotated[int, typer.Option(help="Beam width; 1 = greedy.")] = 1,
    lm: LmOpt = None,
    lexicon: LexiconOpt = None,
    lm_weight: LmWeightOpt = None,
    word_score: WordScoreOpt = None,
    on: Annotated[Path | None, typer.Option(help="Score on the dev/test corpora of this recipe instead of the "
                                                 "experiment's own (cross-corpus; a line per corpus).")] = None,
) -> None:
    """Score an experiment's best model (and averaged.pt beside it, when there is one) on a split: error rate with
    S/D/I, per-utterance alignments, a confusion matrix, per-phone-class rates and report.html.

    With --lm/--lexicon (or the recipe's decoding.lm), decodes with flashlight's beam search and the LM."""
    from lstm_asr.recipe import load_recipe
    from lstm_asr.recognition.corpora_evaluation import evaluate_corpora
    from lstm_asr.recognition.experiment_evaluation import evaluate_experiment

    if on is not None:  # another recipe's corpora: a line per corpus (cross-corpus transfer)
        lines = evaluate_corpora(exp, load_recipe(on), split, beam=beam, lm=lm, lexicon=lexicon, lm_weight=lm_weight,
                                 word_score=word_score, other=True)
        for line in lines:
            print(line)
        return
    recipe = load_recipe(exp / "recipe.yaml") if (exp / "recipe.yaml").is_file() else None
    if recipe is not None and recipe.corpora:  # several corpora: a line per corpus, then all of them
        lines = evaluate_corpora(exp, recipe, split, beam=beam, lm=lm, lexicon=lexicon, lm_weight=lm_weight,
                                 word_score=word_score)
    else:
        lines = evaluate_experiment(exp, split, beam=beam, lm=lm, lexicon=lexicon, lm_weight=lm_weight,
                                    word_score=word_score)
    for line in lines:
        print(line)


@app.command()
def average(
    exp: Annotated[Path, typer.Argument(help="Experiment folder trained with training.average_last.")],
    last: Annotated[int, typer.Option("--last", help="How many epoch checkpoints to average.")] = 5,
    by: Annotated[str, typer.Option(help="last: the last N epochs; best: the N with the lowest dev error.")] = "last",
) -> None:
    """Average the weights of N kept epoch checkpoints into EXP/averaged.pt (then: lstm-asr evaluate EXP)."""
    from lstm_asr.training.averaging import average_experiment

    path, epochs = average_experiment(exp, last, by)
    print(f"wrote {path}: the mean of epochs {', '.join(map(str, epochs))} ({by} {last})")


lm_app = typer.Typer(no_args_is_help=True, help="Token and word n-gram language models.")
app.add_typer(lm_app, name="lm")


@lm_app.command("build")
def lm_build(
    source: Annotated[Path, typer.Argument(help="Text file (one sentence per line) or experiment folder (the "
                                                "training transcripts of its corpus, or of every training corpus of "
                                                "a multi-corpus recipe; e.g. TIMIT phones).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="ARPA file to write.")],
    order: Annotated[int, typer.Option(help="n-gram order (2 = bigram).")] = 2,
    smoothing: Annotated[str, typer.Option(help="kneser-ney or witten-bell (both interpolated).")] = "kneser-ney",
    units: Annotated[str, typer.Option(help="For a text file: words (whitespace-separated symbols) or chars.")] = (
        "words"),
) -> None:
    """Estimate an n-gram LM and write it as ARPA (loads in the flashlight decoder)."""
    from lstm_asr.decoding.ngram import build_ngram, experiment_sentences, read_sentences

    if units not in ("words", "chars"):
        raise LstmAsrError(f"unknown --units {units!r} (use words or chars)")
    if source.is_dir():
        sentences, vocab = experiment_sentences(source)
    else:
        sentences, vocab = read_sentences(source, units), []
    lm = build_ngram(sentences, order, smoothing, vocab=vocab)
    lm.write_arpa(out)
    counts = ", ".join(f"{len(lm.probs[k])} {k}-grams" for k in range(1, order + 1))
    print(f"wrote {out}: {smoothing} {order}-gram from {len(sentences)} sentences ({counts})")


@lm_app.command("lexicon")
def lm_lexicon(
    text: Annotated[Path, typer.Argument(help="Text file, one sentence per line (e.g. the LM's training text).")],
    model: Annotated[Path, typer.Option(help="Character model: experiment folder or checkpoint.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Lexicon file to write.")],
) -> None:
    """Spell every word of a text in a character model's units (``WORD W O R D |``): the lexicon for word
    decoding with `--lexicon` and a word LM from `lstm-asr lm build TEXT --order 3`."""
    from lstm_asr.decoding.lm_decode import spelling_lexicon
    from lstm_asr.decoding.ngram import read_sentences
    from lstm_asr.recognition.recognizer import Recognizer

    entries, unspellable = spelling_lexicon(read_sentences(text), Recognizer.load(model).tokens)
    with reporting_write_errors(out, "the lexicon"):
        out.write_text("".join(f"{word} {' '.join(spelling)}\n" for word, spelling in entries), encoding="utf-8")
    note = ""
    if unspellable:
        examples = ", ".join(list(unspellable)[:5])
        note = f"; left out {len(unspellable)} words with characters the model lacks (e.g. {examples})"
    print(f"wrote {out}: {len(entries)} words{note}")


@app.command()
def align(
    audio: Annotated[Path, typer.Argument(help="Audio file.")],
    transcript: Annotated[str, typer.Argument(help="Space-separated model tokens (TIMIT phones), or the text for "
                                                   "a character model.")],
    model: Annotated[Path | None, typer.Option(help="Experiment folder or checkpoint (default: latest).")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="File to write (default: stdout).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="textgrid (Praat) or ctm.")] = "textgrid",
) -> None:
    """Force-align a known transcript to audio (CTC Viterbi); write a Praat TextGrid or CTM."""
    from lstm_asr.decoding.alignment import ctm, textgrid
    from lstm_asr.recognition.align_file import align_audio
    from lstm_asr.recognition.recognizer import Recognizer, find_latest_experiment

    if fmt not in ("textgrid", "ctm"):
        raise LstmAsrError(f"unknown --format {fmt!r} (use textgrid or ctm)")
    rec = Recognizer.load(model or find_latest_experiment())
    intervals, duration = align_audio(rec, audio, transcript)
    text = textgrid(intervals, duration) if fmt == "textgrid" else ctm(intervals, audio.stem)
    if out is None:
        print(text, end="")
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise LstmAsrError(f"{out}: cannot write ({exc.strerror or exc})") from None
        print(f"wrote {out}: {len(intervals)} tokens over {duration:.2f} s")


def main() -> None:
    """Console entry point: run the app, turning lstm-asr errors into one-line messages."""
    try:
        app()
    except LstmAsrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # disk full or permissions in a writer that did not wrap it: still one line
        if exc.errno not in FIXABLE_ERRNOS:
            raise
        print(f"error: {exc.filename or 'writing'}: {os_error_problem(exc)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
