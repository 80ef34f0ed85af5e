"""``lstm-asr serve EXP``: live recognition in the browser, over a WebSocket (Starlette on uvicorn).

``GET /`` serves the page (``lstm_asr/serving/static/``: record from the microphone through Web Audio, or drop a
file; phones/characters appear as they are recognised; the final alignment is drawn under the waveform).
``GET /info`` describes the model. ``/ws`` is the stream, one connection per recording:

* client -> server, first: a JSON text message ``{"type": "start", "format": "pcm16"}`` (then binary messages of
  16-bit little-endian mono PCM at the model's rate, 16 kHz) or ``{"format": "file"}`` (then the bytes of an
  audio file in binary messages: WAV, FLAC, OGG, SPHERE; it is decoded when complete, as a stream);
  finally ``{"type": "end"}``;
* server -> client: JSON updates as :meth:`~lstm_asr.recognition.stream_recognizer.Update.to_dict` gives them
  (``partial`` while it changes, ``final`` per segment; after ``end`` the last ``final`` has ``"last": true``), or
  ``{"type": "error", "message": ...}`` just before the server closes the connection.

Limits (:class:`ServerLimits`), each enforced per connection, so one bad client never affects the others: message
size, audio arriving faster than real time (beyond a burst allowance), total file size, idle time, connection
lifetime; and the number of open connections. A malformed message (not JSON, an unknown type, PCM of an odd
number of bytes, audio before ``start``) closes that connection with a one-line reason.

Decoding is CPU work: each update runs in a worker thread, at most ``workers`` at once (one per core), with one
torch thread each, so the event loop keeps reading every connection while the network computes.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from lstm_asr.errors import LstmAsrError
from lstm_asr.recognition.stream_recognizer import StreamingRecognizer


@dataclass(frozen=True)
class ServerLimits:
    """What one connection may do, and how many may be open."""

    max_connections: int = 32
    max_message_bytes: int = 1 << 20  # one WebSocket message (uvicorn refuses larger frames too)
    max_file_bytes: int = 50 << 20  # a dropped file
    max_seconds: float = 900.0  # a connection's lifetime
    idle_seconds: float = 30.0  # silence on the wire (no message at all) before the server hangs up
    realtime_factor: float = 4.0  # pcm16 audio may arrive this much faster than real time ...
    burst_seconds: float = 5.0  # ... beyond a burst of this much audio
    workers: int = 2  # decoding threads (one per core)


class ClientError(Exception):
    """Something a client did wrong: the connection is closed with this message and WebSocket ``code``."""

    def __init__(self, message: str, code: int = 1008) -> None:
        super().__init__(message)
        self.code = code


def _static_text(name: str) -> str:
    return resources.files("lstm_asr.serving").joinpath("static", name).read_text(encoding="utf-8")


def create_app(recognizer: StreamingRecognizer, limits: ServerLimits | None = None):
    """The Starlette application serving the page, ``/info`` and the ``/ws`` stream for ``recognizer``."""
    try:
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse, JSONResponse, Response
        from starlette.routing import Route, WebSocketRoute
        from starlette.websockets import WebSocket, WebSocketDisconnect
    except ImportError:
        raise LstmAsrError("lstm-asr serve needs the serve extra: pip install 'lstm-asr[serve]'") from None
    import anyio
    import torch

    limits = limits or ServerLimits()
    slots = anyio.CapacityLimiter(limits.workers)
    state = {"open": 0, "served": 0, "refused": 0}
    info = {"sample_rate": recognizer.sample_rate, "tokens": recognizer.tokens[1:], "units": recognizer.units,
            "chunk_frames": recognizer.chunk_frames, "right_context": recognizer.right_context,
            "frame_seconds": recognizer.frame_seconds, "max_message_bytes": limits.max_message_bytes}
    torch.set_num_threads(1)  # one thread per decode; `workers` decodes at once

    async def page(request) -> Response:
        return HTMLResponse(_static_text("index.html"))

    async def script(request) -> Response:
        name = request.path_params["name"]
        if name not in ("app.js", "pcm-worklet.js", "style.css"):
            return Response("not found", status_code=404)
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return Response(_static_text(name), media_type=kind)

    async def describe(request) -> Response:
        return JSONResponse({**info, "connections": state["open"], "served": state["served"]})

    async def run(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=slots)

    async def send_updates(ws: WebSocket, updates, last: bool = False) -> None:
        for i, update in enumerate(updates):
            message = update.to_dict()
            if last and i == len(updates) - 1:
                message["last"] = True
            await ws.send_text(json.dumps(message))

    async def receive(ws: WebSocket, deadline: float) -> dict:
        timeout = min(limits.idle_seconds, deadline - time.monotonic())
        if timeout <= 0:
            raise ClientError(f"connection open longer than {limits.max_seconds:g} s")
        try:
            message = await asyncio.wait_for(ws.receive(), timeout)
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise ClientError(f"connection open longer than {limits.max_seconds:g} s") from None
            raise ClientError(f"nothing received for {limits.idle_seconds:g} s") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        size = len(message.get("bytes") or b"") + len((message.get("text") or "").encode())
        if size > limits.max_message_bytes:
            raise ClientError(f"message of {size} bytes (at most {limits.max_message_bytes})", 1009)
        return message

    def control(message: dict) -> dict:
        try:
            obj = json.loads(message["text"])
        except ValueError:
            raise ClientError("text messages must be JSON", 1003) from None
        if not isinstance(obj, dict) or obj.get("type") not in ("start", "end"):
            raise ClientError('expected {"type": "start"} or {"type": "end"}', 1003)
        return obj

    async def next_data(ws: WebSocket, deadline: float) -> bytes | None:
        """The next binary message of a started stream, or None at its {"type": "end"}."""
        message = await receive(ws, deadline)
        if message.get("text") is not None:
            if control(message)["type"] == "end":
                return None
            raise ClientError("the stream has started already", 1003)
        return message.get("bytes") or b""

    async def stream_pcm(ws: WebSocket, deadline: float) -> None:
        stream = recognizer.open()
        started = time.monotonic()
        audio = 0.0
        while (data := await next_data(ws, deadline)) is not None:
            if len(data) % 2:
                raise ClientError("pcm16 messages must hold whole 16-bit samples", 1007)
            audio += len(data) / 2 / recognizer.sample_rate
            allowed = limits.burst_seconds + limits.realtime_factor * (time.monotonic() - started)
            if audio > allowed:
                raise ClientError(f"audio arrives faster than {limits.realtime_factor:g}x real time")
            samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
            await send_updates(ws, await run(stream.feed, samples))
        await send_updates(ws, [await run(stream.finish)], last=True)

    async def stream_file(ws: WebSocket, deadline: float) -> None:
        parts, size = [], 0
        while (data := await next_data(ws, deadline)) is not None:
            size += len(data)
            if size > limits.max_file_bytes:
                raise ClientError(f"file larger than {limits.max_file_bytes} bytes", 1009)
            parts.append(data)

        def decode() -> list:
            from data_prep.audio import load_audio

            with tempfile.NamedTemporaryFile(suffix=".audio") as f:
                f.write(b"".join(parts))
                f.flush()
                try:
                    samples = load_audio(Path(f.name), recognizer.sample_rate).numpy()
                except LstmAsrError as exc:
                    raise ClientError(f"not a readable audio file ({str(exc).split(': ', 1)[-1]})", 1007) from None
            stream, updates = recognizer.open(), []
            step = recognizer.sample_rate // 10
            for i in range(0, samples.size, step):
                updates += stream.feed(samples[i: i + step])
            return updates + [stream.finish()]

        updates = await run(decode)
        await send_updates(ws, updates, last=True)

    async def websocket(ws: WebSocket) -> None:
        if state["open"] >= limits.max_connections:
            state["refused"] += 1
            await ws.accept()
            await ws.send_text(json.dumps({"type": "error", "message": "server busy: too many connections"}))
            await ws.close(1013, "too many connections")
            return
        state["open"] += 1
        await ws.accept()
        deadline = time.monotonic() + limits.max_seconds
        try:
            first = await receive(ws, deadline)
            if first.get("text") is None:
                raise ClientError('send {"type": "start", "format": "pcm16" or "file"} first', 1003)
            start = control(first)
            if start["type"] != "start" or start.get("format", "pcm16") not in ("pcm16", "file"):
                raise ClientError('send {"type": "start", "format": "pcm16" or "file"} first', 1003)
            rate = start.get("sample_rate", recognizer.sample_rate)
            if start.get("format", "pcm16") == "pcm16" and rate != recognizer.sample_rate:
                raise ClientError(f"pcm16 must be at {recognizer.sample_rate} Hz, not {rate}", 1003)
            if start.get("format", "pcm16") == "file":
                await stream_file(ws, deadline)
            else:
                await stream_pcm(ws, deadline)
            state["served"] += 1
            await ws.close(1000)
        except ClientError as exc:
            try:
                await ws.send_text(json.dumps({"type": "error", "message": str(exc)}))
                await ws.close(exc.code, str(exc)[:120])
            except (RuntimeError, WebSocketDisconnect, OSError):
                pass  # the client is gone already
        except WebSocketDisconnect:
            pass
        finally:
            state["open"] -= 1

    app = Starlette(routes=[Route("/", page), Route("/static/{name}", script), Route("/info", describe),
                            WebSocketRoute("/ws", websocket)])
    app.state.counters = state
    return app


def serve(recognizer: StreamingRecognizer, host: str = "127.0.0.1", port: int = 8000,
          limits: ServerLimits | None = None) -> None:
    """Run the server until interrupted (uvicorn; localhost unless ``host`` says otherwise)."""
    try:
        import uvicorn
    except ImportError:
        raise LstmAsrError("lstm-asr serve needs the serve extra: pip install 'lstm-asr[serve]'") from None
    limits = limits or ServerLimits()
    app = create_app(recognizer, limits)
    print(f"serving on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", ws_max_size=limits.max_message_bytes,
                ws_ping_interval=20.0, ws_ping_timeout=20.0)
