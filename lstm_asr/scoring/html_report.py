"""``report.html``: one self-contained page to look at a scored split's errors.

Summary (error rate with S/D/I, per phone class), the confusion matrix (inline SVG heatmap: no external file),
the most frequent confusions, the error rate per speaker, and every utterance with its colour-coded alignment
(substitutions amber, deletions red, insertions blue, each with its reference and hypothesis symbol) and an audio
player whose sound is embedded (Ogg Vorbis as a data URI), so the page can be mailed or archived as one file.
Utterances are listed worst first. Nothing is loaded from the network.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lstm_asr.errors import reporting_write_errors
from lstm_asr.scoring.confusion import Confusions, draw_confusions
from lstm_asr.scoring.levenshtein import ErrorCounts, align

# Exact colours (the browser test looks for them in a screenshot).
COLOURS = {"S": "#ffb000", "D": "#e0303a", "I": "#2f7de1"}

AudioFn = Callable[[int], tuple[np.ndarray, int] | None]

_CSS = f"""
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; }}
th {{ background: #f0f0f0; }}
.utt {{ border-top: 1px solid #ddd; padding: 0.6em 0; }}
.ali {{ font-family: monospace; line-height: 2.2; }}
.tok {{ display: inline-block; padding: 0 3px; margin: 1px; border-radius: 3px; text-align: center; }}
.tok small {{ display: block; line-height: 1.1; font-size: 70%; }}
.S {{ background: {COLOURS["S"]}; }}
.D {{ background: {COLOURS["D"]}; color: white; }}
.I {{ background: {COLOURS["I"]}; color: white; }}
.legend span {{ padding: 2px 8px; margin-right: 6px; }}
#confusion svg {{ max-width: 100%; height: auto; }}
"""


def _audio_uri(samples: np.ndarray, rate: int) -> str:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1, 1).astype(np.float32), rate, format="OGG", subtype="VORBIS")
    return "data:audio/ogg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _alignment_html(ref: Sequence[str], hyp: Sequence[str]) -> str:
    parts = []
    for op, r, h in align(ref, hyp)[0]:
        if op == "C":
            parts.append(f'<span class="tok">{html.escape(r or "")}</span>')
        elif op == "S":
            parts.append(f'<span class="tok S" title="substitution">{html.escape(r or "")}'
                         f'<small>{html.escape(h or "")}</small></span>')
        elif op == "D":
            parts.append(f'<span class="tok D" title="deletion">{html.escape(r or "")}<small>&mdash;</small></span>')
        else:
            parts.append(f'<span class="tok I" title="insertion">&mdash;<small>{html.escape(h or "")}</small></span>')
    return "".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], css_id: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    ident = f' id="{css_id}"' if css_id else ""
    return f"<table{ident}><tr>{head}</tr>{body}</table>"


def _inline_svg(conf: Confusions, workdir: Path, title: str) -> str:
    path = draw_confusions(conf, workdir / "confusion.svg", title)
    text = path.read_text(encoding="utf-8")
    return text[text.index("<svg"):]  # drop the XML prologue and DOCTYPE: inline SVG needs neither


def write_report(out: Path, *, title: str, ids: Sequence[str], speakers: Sequence[str],
                 refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]], counts: ErrorCounts, metric: str,
                 conf: Confusions, classes: dict[str, dict], audio: AudioFn | None = None,
                 figure_dir: Path | None = None) -> Path:
    """Write ``out`` (report.html); ``audio(i)`` gives utterance i's samples and rate (None: no player).

    ``figure_dir`` is where the confusion heatmap's SVG is drawn first (default: ``out``'s folder)."""
    per_spk: dict[str, ErrorCounts] = {}
    utts = []
    for i, (spk, ref, hyp) in enumerate(zip(speakers, refs, hyps, strict=True)):
        c = align(ref, hyp)[1]
        per_spk.setdefault(spk, ErrorCounts())
        per_spk[spk] += c
        utts.append((c.rate, i, c))
    utts.sort(key=lambda x: (-x[0], x[1]))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>", "<h2>Summary</h2>"]
    parts.append(_table([metric, "N", "S", "D", "I", "utterances", "speakers"],
                        [[f"{counts.rate * 100:.2f}%", counts.ref_tokens, counts.sub, counts.dele, counts.ins,
                          len(ids), len(per_spk)]], "summary"))
    if classes:
        parts.append("<h3>Per phone class</h3>")
        parts.append(_table(["class", f"{metric}", "N", "S", "D", "I"],
                            [[k, f"{v['rate']:.2f}%", v["ref_tokens"], v["sub"], v["dele"], v["ins"]]
                             for k, v in classes.items()], "classes"))
    parts.append("<h2>Confusion matrix</h2><p>Rows: reference; columns: hypothesis; colour: share of the "
                 "reference row; (del) column: deletions; (ins) row: insertions.</p>")
    parts.append(f"<div id='confusion'>{_inline_svg(conf, figure_dir or out.parent, title)}</div>")
    parts.append("<h3>Most frequent errors</h3>")
    parts.append(_table(["reference", "hypothesis", "count"], conf.top_confusions(20), "top"))
    parts.append("<h2>Per speaker</h2>")
    parts.append(_table(["speaker", metric, "N", "S", "D", "I"],
                        [[s, f"{c.rate * 100:.2f}%", c.ref_tokens, c.sub, c.dele, c.ins]
                         for s, c in sorted(per_spk.items(), key=lambda x: (-x[1].rate, x[0]))], "speakers"))
    parts.append("<h2>Utterances (worst first)</h2><p class='legend'>"
                 "<span class='S'>substitution (ref / hyp)</span><span class='D'>deletion</span>"
                 "<span class='I'>insertion</span></p>")
    for rate, i, c in utts:
        player = ""
        if audio is not None and (sound := audio(i)) is not None:
            player = f"<br><audio controls preload='none' src='{_audio_uri(*sound)}'></audio>"
        parts.append(f"<div class='utt' id='utt-{html.escape(ids[i])}'><b>{html.escape(ids[i])}</b> "
                     f"({html.escape(speakers[i])}) {metric} {rate * 100:.1f}% (N={c.ref_tokens} S={c.sub} "
                     f"D={c.dele} I={c.ins}){player}<div class='ali'>{_alignment_html(refs[i], hyps[i])}</div>"
                     "</div>")
    parts.append("</body></html>\n")
    with reporting_write_errors(out, "the HTML report"):
        out.write_text("".join(parts), encoding="utf-8")
    return out
