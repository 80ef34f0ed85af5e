"""``lstm-asr serve``: the page in a real browser (headless Chromium, its fake microphone playing a WAV) shows the
transcript ``lstm-asr decode`` gives for that WAV, for the microphone and for a chosen file; and clients that send
garbage, too much, too fast or nothing get their own connection closed with a reason while others are served."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from browser import Chromium, ServerThread
from conftest import run_cli
from streaming_models import make_tone_model, write_checkpoint, write_tone_wav

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
websockets = pytest.importorskip("websockets")
# Connections here stay open across a test (not in a `with` block), which websockets' sync client frowns upon.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")

from lstm_asr.recognition.recognizer import Recognizer  # noqa: E402
from lstm_asr.recognition.stream_recognizer import StreamingRecognizer, StreamSettings  # noqa: E402
from lstm_asr.serving.server import ServerLimits, create_app  # noqa: E402


@pytest.fixture(scope="module")
def tone_exp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    exp = write_checkpoint(make_tone_model(), tmp / "exp")
    wav = write_tone_wav(tmp / "tones.wav")
    return exp, wav


def _server(exp, **limits) -> ServerThread:
    rec = StreamingRecognizer(Recognizer.load(exp), StreamSettings(endpoint_seconds=0))
    return ServerThread(create_app(rec, ServerLimits(**limits)))


FINAL = ("window.lstmAsr && (window.lstmAsr.done || window.lstmAsr.error) && "
         "JSON.stringify({finals: window.lstmAsr.finals.map(f => f.text), error: window.lstmAsr.error, "
         "tokens: window.lstmAsr.finals.map(f => f.tokens.length)})")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/bootstrap.sh)")
def test_browser_shows_what_decode_gives_for_microphone_and_file(tone_exp, tmp_path) -> None:
    exp, wav = tone_exp
    done = run_cli("decode", "--model", str(exp), str(wav))
    assert done.returncode == 0, done.stderr
    want = done.stdout.split("\t")[1].strip()
    assert want == "aa iy aa"
    server = _server(exp)
    (tmp_path / "profile").mkdir()
    browser = Chromium(tmp_path / "profile", fake_audio=wav)
    try:
        browser.goto(server.url + "/?record=2.8")  # record at once (the fake microphone plays the WAV), then stop
        got = json.loads(browser.wait_for(FINAL, timeout=60))
        assert got["error"] is None and " ".join(got["finals"]) == want
        # The same file chosen on the page: uploaded over the WebSocket, decoded as a stream by the server.
        browser.goto(server.url + "/")
        browser.wait_for("window.lstmAsr && window.lstmAsr.info !== null")
        root = browser.call("DOM.getDocument", browser.session)["root"]["nodeId"]
        node = browser.call("DOM.querySelector", browser.session, nodeId=root, selector="#file")["nodeId"]
        browser.call("DOM.setFileInputFiles", browser.session, files=[str(wav)], nodeId=node)
        got = json.loads(browser.wait_for(FINAL, timeout=60))
        assert got["error"] is None and got["finals"] == [want] and got["tokens"] == [3]
        drawn = browser.evaluate("(() => { const c = document.getElementById('wave'); const d = c.getContext('2d')"
                                 ".getImageData(0, 140, c.width, 24).data; let n = 0; for (let i = 3; i < d.length; "
                                 "i += 4) n += d[i] > 0; return n; })()")
        assert drawn > 0  # the alignment boxes under the waveform
    finally:
        browser.close()
        server.stop()


def _client(url: str):
    import warnings

    from websockets.sync.client import connect

    with warnings.catch_warnings():  # a connection kept open across the test, not a `with` block
        warnings.simplefilter("ignore", DeprecationWarning)
        return connect(url.replace("http", "ws") + "/ws", max_size=None, open_timeout=10)


def _closed_with(ws, code: int) -> str:
    """Read until the server closes; returns the error message it sent (and checks the close code)."""
    message = ""
    try:
        while True:
            obj = json.loads(ws.recv(timeout=20))
            if obj.get("type") == "error":
                message = obj["message"]
    except websockets.exceptions.ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == code, (exc.rcvd, message)
    return message


def test_bad_clients_are_closed_and_others_served(tone_exp) -> None:
    exp, wav = tone_exp
    server = _server(exp, idle_seconds=3.0, max_connections=6, realtime_factor=2.0, burst_seconds=1.0,
                     max_message_bytes=64 << 10)
    data = wav.read_bytes()
    pieces = iter([data[i: i + len(data) // 6 + 1] for i in range(0, len(data), len(data) // 6 + 1)])
    try:
        good = _client(server.url)  # sends its file a piece at a time between the bad clients' turns
        good.send(json.dumps({"type": "start", "format": "file"}))
        good.send(next(pieces, b''))
        garbage = _client(server.url)
        garbage.send("hello")
        assert "JSON" in _closed_with(garbage, 1003)
        good.send(next(pieces, b''))
        odd = _client(server.url)
        odd.send(json.dumps({"type": "start", "format": "pcm16"}))
        odd.send(b"\x00\x01\x02")
        assert "16-bit" in _closed_with(odd, 1007)
        good.send(next(pieces, b''))
        early = _client(server.url)
        early.send(b"\x00\x00")
        assert "start" in _closed_with(early, 1003)
        good.send(next(pieces, b''))
        big = _client(server.url)
        big.send(json.dumps({"type": "start"}))
        big.send(b"\x00" * (128 << 10))
        _closed_with(big, 1009)
        good.send(next(pieces, b''))
        fast = _client(server.url)
        fast.send(json.dumps({"type": "start"}))
        second = np.zeros(16000, dtype="<i2").tobytes()
        # 20 s of audio at once: far beyond 1 s of burst. When the server's close arrives depends on how soon its
        # thread runs (a send may fail, or all 20 may go out first on a busy machine); the close and its reason do not.
        try:
            for _ in range(20):
                fast.send(second)
                time.sleep(0.01)
        except websockets.exceptions.ConnectionClosed:
            pass
        assert "faster than 2x real time" in _closed_with(fast, 1008)
        # The good client, left waiting meanwhile, is still served: its file decodes as decode says.
        for piece in pieces:
            good.send(piece)
        good.send(json.dumps({"type": "end"}))
        updates = []
        try:
            while True:
                updates.append(json.loads(good.recv(timeout=30)))
        except websockets.exceptions.ConnectionClosedOK:
            pass
        assert updates[-1]["last"] and updates[-1]["text"] == "aa iy aa"
        idle = _client(server.url)
        idle.send(json.dumps({"type": "start"}))
        assert "nothing received" in _closed_with(idle, 1008)
        busy = [_client(server.url) for _ in range(7)]  # one more than max_connections
        assert "too many" in _closed_with(busy[-1], 1013)
        for ws in busy[:-1]:
            ws.close()
    finally:
        server.stop()
