"""``lstm-asr serve`` under load: N clients on loopback, each streaming recordings at real time, for M minutes.

The server runs as its own process (``python -m lstm_asr serve EXP``, 127.0.0.1, a free port). Each client
thread streams core-test recordings of the experiment's corpus one after another, 100 ms of 16-bit PCM per
message, paced at real time, ends each recording and waits for its final result, until the time is up. Reported:

* per-stream real-time factor: the server's CPU seconds (from /proc) per second of audio it received, and the
  wall-clock time from a recording's end to its final result (median, 95th percentile);
* nothing dropped: every final result must equal what the same streaming recogniser gives offline for that
  recording (audio lost or reordered on the way would change it), and every recording must get one;
* memory: the server's resident set every 10 s; first (after the first minute), last and largest, and the slope.

Bounded in count and time, loopback only; it stops by itself. Run (it measures speed: the whole machine):
``/work/bin/cpu-run -n 2 .venv/bin/python bench/bench_serve_load.py exp/NAME --clients 20 --minutes 10``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchlib
import numpy as np
from browser import free_port

from data_prep.audio import load_audio
from lstm_asr.recognition.recognizer import Recognizer
from lstm_asr.recognition.stream_recognizer import StreamingRecognizer, StreamSettings


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = benchlib.parser(__doc__, threads=None)
    ap.add_argument("exp")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--files", type=int, default=8, help="core-test recordings the clients take turns on")
    args = ap.parse_args()
    from bench_streaming import _test_files
    from websockets.sync.client import connect

    exp = Path(args.exp)
    files = _test_files(exp, args.files)
    audio = [load_audio(f).numpy() for f in files]
    offline = StreamingRecognizer(Recognizer.load(exp), StreamSettings())
    expected = []
    for samples in audio:  # what the server must answer for each recording (same settings, offline)
        stream = offline.open()
        finals = [u.text for u in stream.feed(samples) if u.kind == "final"]
        finals.append(stream.finish().text)
        expected.append(" ".join(t for t in finals if t))
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tempfile.TemporaryFile()  # the server's stderr (a pipe nobody reads could fill up and stall it)
    server = subprocess.Popen([sys.executable, "-m", "lstm_asr", "serve", str(exp), "--port", str(port),
                               "--max-seconds", str(args.minutes * 60 + 600)], env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
    url = f"ws://127.0.0.1:{port}/ws"
    deadline = time.monotonic() + 60
    while True:
        try:
            with connect(url, open_timeout=2) as ws:
                ws.send(json.dumps({"type": "start"}))
                ws.send(json.dumps({"type": "end"}))
                ws.recv(timeout=10)
            break
        except (OSError, Exception):  # noqa: BLE001 -- not listening yet
            if time.monotonic() > deadline or server.poll() is not None:
                log.seek(0)
                raise SystemExit(f"server did not start: {log.read().decode()[-500:]}") from None
            time.sleep(0.5)
    stop_at = time.monotonic() + args.minutes * 60
    lock = threading.Lock()
    results = {"recordings": 0, "mismatched": 0, "missing": 0, "errors": [], "final_wait_ms": [],
               "update_latency_ms": [], "audio_seconds": 0.0}
    cpu0 = _cpu_seconds(server.pid)

    def client(k: int) -> None:
        i = k
        while time.monotonic() < stop_at:
            samples = audio[i % len(audio)]
            pcm = (np.clip(samples, -1, 1) * 32767).round().astype("<i2").tobytes()
            finals, latencies = [], []
            try:
                with connect(url, open_timeout=30, max_size=None) as ws:
                    ws.send(json.dumps({"type": "start", "format": "pcm16"}))
                    start = time.monotonic()
                    step = 3200  # 100 ms of 16-bit samples
                    received: list = []

                    def reader(ws=ws, received: list = received) -> None:
                        try:
                            while True:
                                message = ws.recv(timeout=120)
                                received.append((time.monotonic(), json.loads(message)))
                        except Exception:  # noqa: BLE001 -- the server closed the connection: the end
                            pass

                    t = threading.Thread(target=reader)
                    t.start()
                    for j, pos in enumerate(range(0, len(pcm), step)):
                        time.sleep(max(0.0, start + (j + 1) * 0.1 - time.monotonic()))
                        ws.send(pcm[pos: pos + step])
                    ended = time.monotonic()
                    ws.send(json.dumps({"type": "end"}))
                    t.join(timeout=150)
                for _, u in received:
                    if u.get("type") == "final":
                        finals.append(u["text"])
                    if "latency_ms" in u:
                        latencies.append(u["latency_ms"])
                last = [when for when, u in received if u.get("last")]
                with lock:
                    results["recordings"] += 1
                    results["audio_seconds"] += samples.size / 16000
                    results["update_latency_ms"] += latencies
                    if not last:
                        results["missing"] += 1
                    else:
                        results["final_wait_ms"].append(1000 * (last[0] - ended))
                        if " ".join(t for t in finals if t) != expected[i % len(audio)]:
                            results["mismatched"] += 1
            except Exception as exc:  # noqa: BLE001 -- counted and reported, the load goes on
                with lock:
                    results["errors"].append(f"{type(exc).__name__}: {str(exc)[:100]}")
            i += args.clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    memory = []
    t0 = time.monotonic()
    while any(t.is_alive() for t in threads):
        memory.append((round(time.monotonic() - t0, 1), round(_rss_mb(server.pid), 1)))
        time.sleep(10)
    cpu = _cpu_seconds(server.pid) - cpu0
    server.terminate()
    server.wait(timeout=30)
    log.seek(0)
    server_errors = log.read().decode(errors="replace").strip().splitlines()
    later = [m for s, m in memory if s >= 60] or [m for _, m in memory]
    times = [s for s, _ in memory if s >= 60] or [s for s, _ in memory]
    slope = float(np.polyfit(np.asarray(times) / 60, later, 1)[0]) if len(later) > 2 else 0.0
    wait = np.asarray(results["final_wait_ms"] or [0.0])
    lat = np.asarray(results["update_latency_ms"] or [0.0])
    result = {
        "clients": args.clients, "minutes": args.minutes, "recordings": results["recordings"],
        "audio_seconds": round(results["audio_seconds"], 1),
        "server_cpu_seconds_per_audio_second": round(cpu / max(results["audio_seconds"], 1e-9), 4),
        "final_wait_ms": {"median": round(float(np.median(wait)), 1),
                          "p95": round(float(np.percentile(wait, 95)), 1)},
        "update_latency_ms": {"median": round(float(np.median(lat)), 1),
                              "p95": round(float(np.percentile(lat, 95)), 1)},
        "dropped": {"missing_final": results["missing"], "final_differs_from_offline": results["mismatched"],
                    "client_errors": len(results["errors"]), "first_errors": results["errors"][:3],
                    "server_log_lines": len(server_errors), "server_log_tail": server_errors[-3:]},
        "memory_mb": {"first_after_1_min": later[0] if later else None, "last": later[-1] if later else None,
                      "max": max(m for _, m in memory) if memory else None, "slope_mb_per_min": round(slope, 2)},
        "config": benchlib.config(args),
    }
    benchlib.emit(result, args.json)


if __name__ == "__main__":
    main()
