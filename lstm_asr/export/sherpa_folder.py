"""``lstm-asr export EXP --format sherpa-onnx -o OUT_DIR``: everything of the experiment that sherpa-onnx runs, in
one folder, as sherpa-onnx's own model releases come: the offline model in ``OUT_DIR``
(:mod:`lstm_asr.export.sherpa_export`: files, whole utterances) and, when the model can stream, the streaming
model in ``OUT_DIR/online/`` (:mod:`lstm_asr.export.sherpa_online`: ``OnlineRecognizer``, microphones), each
folder with its own ``tokens.txt`` and ``README.md`` so either can be copied alone. A bidirectional
whole-utterance model gets the offline model only (its README.md says why there is no streaming one); a
latency-controlled model the streaming one only (ONNX unrolls its chunk loop to one length, so it has no offline
graph). ``--streaming`` insists on the streaming model: a model that cannot stream is then a one-line error, not a
note. ``--chunk-frames`` sets a unidirectional model's chunk shift (default 40 frames, 400 ms).
"""

from __future__ import annotations

from pathlib import Path

from lstm_asr.errors import LstmAsrError
from lstm_asr.export.onnx_export import experiment_to_onnx
from lstm_asr.export.sherpa_export import front_end_problem, sherpa_problem, write_offline
from lstm_asr.export.sherpa_online import export_online, online_problem

ONLINE = "online"  # the streaming model's sub-folder


def export_sherpa_folder(exp: str | Path, out_dir: str | Path, chunk_frames: int = 0,
                         streaming: bool = False) -> Path:
    """Write the offline model where the experiment runs offline, and the streaming one (chunk shift
    ``chunk_frames``, 0: the default) into ``out_dir/online/`` where it streams; returns ``out_dir``."""
    rec = experiment_to_onnx(exp, "sherpa-onnx", "sherpa", "for sherpa-onnx", front_end_problem)
    offline, online = sherpa_problem(rec), online_problem(rec)
    if online is not None and (streaming or offline is not None):
        target = "sherpa-onnx's online recognizer" if streaming else "sherpa-onnx"
        raise LstmAsrError(f"{exp}: cannot export for {target}: {online if streaming else offline}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if online is None:
        export_online(rec, out / ONLINE, chunk_frames)
        note = (f"\nStreaming: `{ONLINE}/` holds the streaming model for sherpa-onnx's OnlineRecognizer (its "
                "README.md says how to run it).\n")
    else:
        note = f"\nNo streaming model: {online}.\n"
    if offline is None:
        write_offline(rec, out, note)
    else:
        (out / "README.md").write_text(f"Exported by lstm-asr from {rec.source}.\n\nNo offline model: {offline}.\n"
                                       + note, encoding="utf-8")
    return out
