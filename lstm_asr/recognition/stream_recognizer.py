"""Live recognition: audio in pieces as it arrives, partial hypotheses as they change, a final result per segment.

:class:`StreamingRecognizer` holds what every stream shares (the network, the token list, the search settings);
:meth:`StreamingRecognizer.open` starts a :class:`Stream`, which keeps one stream's state: the streaming pipeline's
(:class:`~lstm_asr.nn.streaming.StreamingPipeline`: features, chunked network), the search's
(:mod:`lstm_asr.decoding.stream_search`) and the end-pointer's. ``stream.feed(samples)`` returns the updates it
caused: a ``partial`` update whenever the best hypothesis changed, a ``final`` one when the speaker has been
silent for ``endpoint_seconds`` (the segment ends: the network finishes it with the look-ahead it has, the search
gives its final result, and the next samples start a new segment). ``stream.finish()`` ends the last segment.

Every update says how late it is: ``latency_ms`` is the wall-clock time from the arrival of the newest samples it
depends on to the update (computing time, and any queue in front of it), ``lag_ms`` how much audio has arrived
beyond what the update has decoded (the look-ahead the model waits for).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from lstm_asr.decoding.ctc_decode import Hypothesis
from lstm_asr.decoding.search import SearchConfig
from lstm_asr.decoding.stream_search import StreamSearch, stream_search_factory
from lstm_asr.errors import LstmAsrError
from lstm_asr.recognition.recognizer import Recognizer

DEFAULT_CHUNK_FRAMES = 40  # for models trained on whole utterances (a streaming model brings its own)
DEFAULT_ENDPOINT_SECONDS = 1.0
DEFAULT_SILENCE_DB = -45.0


@dataclass
class Update:
    """A partial or final hypothesis of one segment of a stream."""

    kind: str  # "partial" or "final"
    segment: int
    tokens: list[str]
    times: list[tuple[float, float]]  # per token (start, end), seconds from the start of the stream
    score: float
    audio_seconds: float  # audio received when the update was made
    decoded_seconds: float  # audio whose outputs are final
    latency_ms: float
    units: str = "phones"

    @property
    def text(self) -> str:
        from data_prep.units import tokens_to_words

        return " ".join(tokens_to_words(self.tokens, self.units))

    def to_dict(self) -> dict:
        return {"type": self.kind, "segment": self.segment, "text": self.text,
                "tokens": [{"token": t, "start": round(s, 3), "end": round(e, 3)}
                           for t, (s, e) in zip(self.tokens, self.times, strict=True)],
                "score": round(self.score, 4), "audio": round(self.audio_seconds, 3),
                "lag_ms": round(1000 * (self.audio_seconds - self.decoded_seconds), 1),
                "latency_ms": round(self.latency_ms, 1)}


@dataclass
class StreamSettings:
    """How to stream: chunk sizes (input frames; 0 = the model's own), end-pointing and the search."""

    chunk_frames: int = 0
    right_context: int = -1  # -1: the model's own
    endpoint_seconds: float = DEFAULT_ENDPOINT_SECONDS  # silence that ends a segment; 0 = only the end of input
    silence_db: float = DEFAULT_SILENCE_DB  # a 10 ms frame below this level (dBFS) is silence
    search: SearchConfig = field(default_factory=SearchConfig)


class StreamingRecognizer:
    """A model ready to decode any number of streams (one :class:`Stream` each) with shared weights."""

    def __init__(self, recognizer: Recognizer, settings: StreamSettings | None = None) -> None:
        from lstm_asr.data.features import FeatureConfig
        from lstm_asr.nn.streaming import StreamingPipeline

        self.settings = settings or StreamSettings()
        self.tokens, self.units = recognizer.tokens, recognizer.units
        if not isinstance(recognizer.features, FeatureConfig):
            raise LstmAsrError("streaming decodes audio; this is a handwriting model (decode its files whole)")
        recognizer.require_ctc("streaming (decode --stream, serve)")  # the streaming searches read CTC outputs
        if recognizer.model is None:
            pipeline = getattr(recognizer, "scripted", None)
            if pipeline is None or not hasattr(pipeline, "initial_state"):
                raise LstmAsrError("this exported model decodes whole files; export it with --streaming to stream "
                                   "it, or stream the experiment folder")
            self.pipeline = pipeline
            self.frame_seconds = float(pipeline.frame_seconds)
        else:
            model = recognizer.model
            chunk = self.settings.chunk_frames or model.config.chunk_frames or DEFAULT_CHUNK_FRAMES
            if model.config.chunk_frames == 0 and chunk % model.frame_reduction:
                chunk = -(-chunk // model.frame_reduction) * model.frame_reduction  # the nearest chunk it can do
            right = self.settings.right_context
            if right < 0 and model.config.chunk_frames == 0:
                right = chunk  # a whole-utterance model: as much look-ahead as chunk (Xue & Yan's Nc = Nr)
            self.pipeline = StreamingPipeline(model.eval(), recognizer.features, chunk, right)
            self.frame_seconds = recognizer.frame_seconds
        self.sample_rate = int(self.pipeline.sample_rate)
        self.chunk_frames, self.right_context = int(self.pipeline.chunk_frames), int(self.pipeline.right_context)
        self.new_search: Callable[[], StreamSearch] = stream_search_factory(self.tokens, self.settings.search)

    def open(self) -> Stream:
        """A new stream (one client, one microphone, one pipe)."""
        return Stream(self)


class Stream:
    """One audio stream's state. Not thread-safe: feed it from one thread at a time."""

    def __init__(self, recognizer: StreamingRecognizer) -> None:
        self.rec = recognizer
        self.segment = 0
        self.received = 0  # samples received in the whole stream
        self.pending_silence = np.zeros(0, dtype=np.float32)  # the end-pointer's partial 10 ms frame
        self._start_segment(0)

    def _start_segment(self, start_sample: int) -> None:
        self.state = self.rec.pipeline.initial_state()
        self.search = self.rec.new_search()
        self.segment_start = start_sample
        self.frames = 0  # output frames decoded in this segment
        self.chunks = 0  # chunks the pipeline can have computed
        self.held: list[np.ndarray] = []  # samples held back until they complete a chunk (saves pipeline calls)
        self.heard_speech = False
        self.silent_samples = 0
        self.last_partial: tuple[int, ...] | None = None

    def _hypothesis_update(self, hyp: Hypothesis, kind: str, arrived: float) -> Update:
        shift = self.rec.frame_seconds
        offset = self.segment_start / self.rec.sample_rate
        frames = list(hyp.frames) if hyp.frames else [0] * len(hyp.tokens)
        ends = frames[1:] + [self.frames] if frames else []
        times = [(offset + f * shift, offset + e * shift) for f, e in zip(frames, ends, strict=True)]
        return Update(kind, self.segment, [self.rec.tokens[i] for i in hyp.tokens], times, float(hyp.score),
                      self.received / self.rec.sample_rate, offset + self.frames * shift,
                      1000 * (time.monotonic() - arrived), self.rec.units)

    def _run(self, samples: torch.Tensor, final: bool) -> None:
        """Feed the pipeline, but only when the samples complete a chunk (or at the end): calls that would only
        buffer are skipped, which keeps the per-call cost of small audio blocks (20 ms callbacks) away."""
        self.held.append(samples.numpy())
        fed = self.received - self.segment_start
        due = int(self.rec.pipeline.samples_needed(self.chunks + 1))
        if fed < due and not final:
            return
        while int(self.rec.pipeline.samples_needed(self.chunks + 1)) <= fed:
            self.chunks += 1
        samples = torch.from_numpy(np.concatenate(self.held))
        self.held = []
        with torch.inference_mode():
            log_probs, self.state = self.rec.pipeline.step(samples, self.state, final)
        self.search.advance(log_probs)
        self.frames += int(log_probs.shape[0])

    def _silence(self, samples: np.ndarray) -> int:
        """Feed the end-pointer; returns the number of samples after which the segment ends (-1: it goes on)."""
        if self.rec.settings.endpoint_seconds <= 0:
            return -1
        hop = self.rec.sample_rate // 100
        buf = np.concatenate([self.pending_silence, samples])
        n = buf.size // hop
        self.pending_silence = buf[n * hop:]
        if n == 0:
            return -1
        level = 10 * np.log10(np.mean(buf[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
        loud = level > self.rec.settings.silence_db
        need = int(self.rec.settings.endpoint_seconds * self.rec.sample_rate)
        # Silence so far at each frame: since the last loud frame, or continuing the previous blocks' count.
        idx = np.arange(n)
        last_loud = np.maximum.accumulate(np.where(loud, idx, -1))
        silent = np.where(last_loud >= 0, (idx - last_loud) * hop, self.silent_samples + (idx + 1) * hop)
        heard = self.heard_speech | (last_loud >= 0)  # a segment ends only after some speech
        hit = np.flatnonzero(heard & ~loud & (silent >= need))
        if hit.size:
            return max(0, (int(hit[0]) + 1) * hop - (buf.size - samples.size))
        self.heard_speech = bool(heard[-1])
        self.silent_samples = int(silent[-1]) if self.heard_speech and not loud[-1] else 0
        return -1

    def feed(self, samples: np.ndarray | torch.Tensor, arrived: float | None = None) -> list[Update]:
        """Feed new samples (1-D float in [-1, 1] at the model's rate); returns the updates they cause.
        ``arrived`` is when the samples arrived (``time.monotonic()``; default: now)."""
        arrived = time.monotonic() if arrived is None else arrived
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        updates: list[Update] = []
        while samples.size:
            cut = self._silence(samples)
            part = samples if cut < 0 else samples[:cut]
            self.received += part.size
            self._run(torch.from_numpy(np.ascontiguousarray(part)), False)
            if cut < 0:
                break
            updates.append(self._end_segment(arrived))
            self.pending_silence = np.zeros(0, dtype=np.float32)
            samples = samples[cut:]
        hyp = self.search.partial()
        if hyp.tokens != self.last_partial and hyp.tokens:
            self.last_partial = hyp.tokens
            updates.append(self._hypothesis_update(hyp, "partial", arrived))
        return updates

    def _end_segment(self, arrived: float) -> Update:
        self._run(torch.zeros(0), True)
        update = self._hypothesis_update(self.search.final(1)[0], "final", arrived)
        self.segment += 1
        self._start_segment(self.received)
        return update

    def finish(self) -> Update:
        """End of input: the final result of the last segment."""
        return self._end_segment(time.monotonic())

    def nbest(self, n: int) -> list[Hypothesis]:
        """The search's current ``n`` best hypotheses of this segment (after :meth:`finish`: none)."""
        return self.search.final(n)
