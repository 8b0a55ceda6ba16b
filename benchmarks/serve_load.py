"""Bounded load on ``ferkit serve`` over loopback: requests/s and latency percentiles.

    python benchmarks/serve_load.py --model runs/x --requests 1000 --concurrency 16
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --requests 200

Without ``--url`` the script starts ``ferkit serve`` itself on a free loopback port and stops it
at the end. Each worker thread keeps one HTTP/1.1 connection and posts the same JPEG (a FER2013
face from ../shared enlarged onto a 320 x 320 background, or ``--image``). The run is bounded
in count (``--requests``) and in time (``--max-seconds``); it only ever talks to loopback
addresses. Exit status 1 if any request failed or the time bound cut the run short.

Figures depend on the machine and on what else runs on it: measure on an idle machine.
"""
from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
SHARED_TEST = ROOT.parent / "shared" / "fer2013" / "test"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="an already running server on loopback (default: start one)")
    p.add_argument("--model", default="default", help="model for the server this script starts")
    p.add_argument("--detector", default="auto", help="detector for the server this script starts")
    p.add_argument("--max-concurrent", type=int, help="--max-concurrent of the server this script starts")
    p.add_argument("--tta", default="auto", help="--tta of the server this script starts (default auto: ten-crop)")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=int, default=20, help="requests sent first and not counted")
    p.add_argument("--max-seconds", type=float, default=300.0, help="stop sending after this long")
    p.add_argument("--image", type=Path, help="JPEG or PNG to post (default: a composed FER2013 face)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        p.error("--requests and --concurrency must be at least 1")
    return args


def make_image(path: Path | None) -> bytes:
    if path is not None:
        return path.read_bytes()
    import cv2
    import numpy as np

    from ferkit.data.images import decode_face

    files = sorted((SHARED_TEST / "happy").glob("*.jpg"))[:1] if SHARED_TEST.is_dir() else []
    if files:
        face = decode_face(files[0])[0]
    else:  # no dataset beside the repo: a plain oval stands in (the detector may find no face)
        face = np.full((48, 48), 90, np.uint8)
        cv2.ellipse(face, (24, 24), (16, 21), 0, 0, 360, 200, -1)
    canvas = np.full((320, 320), 128, np.uint8)
    canvas[64:256, 64:256] = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
    ok, buffer = cv2.imencode(".jpg", canvas)
    return buffer.tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, detector: str, max_concurrent: int | None = None,
                 tta: str = "auto") -> tuple[subprocess.Popen, str]:
    port = free_port()
    extra = ["--max-concurrent", str(max_concurrent)] if max_concurrent else []
    process = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", "--model", model, "--detector", detector,
                                "--port", str(port), "--tta", tta, "--log-level", "warning", *extra],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve_load: ferkit serve exited: {process.stderr.read().strip()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/health")
            if connection.getresponse().status == 200:
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("serve_load: ferkit serve did not answer within 120 s")


def check_loopback(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"serve_load: {url}: only loopback addresses (127.0.0.0/8, ::1, localhost) may be loaded")
    return host, parsed.port or 80


class Worker:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, host: str, port: int, body: bytes):
        self.host, self.port, self.body = host, port, body
        self.connection: http.client.HTTPConnection | None = None

    def post(self) -> tuple[float, str | None]:
        start = time.perf_counter()
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.connection.request("POST", "/api/predict", body=self.body, headers={"Content-Type": "image/jpeg"})
            response = self.connection.getresponse()
            data = response.read()
            error = None if response.status == 200 and "faces" in json.loads(data) else f"HTTP {response.status}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if self.connection is not None:
                self.connection.close()
            self.connection = None
        return (time.perf_counter() - start) * 1000.0, error


def run_load(host: str, port: int, body: bytes, requests: int, concurrency: int, max_seconds: float) -> dict:
    local = threading.local()
    workers: list[Worker] = []
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def one(_: int) -> tuple[float, str | None] | None:
        if time.monotonic() > deadline:
            return None
        worker = getattr(local, "worker", None)
        if worker is None:
            worker = local.worker = Worker(host, port, body)
            with lock:
                workers.append(worker)
        return worker.post()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    for worker in workers:
        if worker.connection is not None:
            worker.connection.close()
    done = [r for r in results if r is not None]
    latencies = sorted(ms for ms, _ in done)
    errors = [e for _, e in done if e]
    return {"requests": len(done), "skipped_by_time_limit": requests - len(done), "errors": len(errors),
            "first_errors": errors[:5], "concurrency": concurrency, "seconds": round(wall, 3),
            "requests_per_s": round(len(done) / wall, 2) if wall > 0 else 0.0,
            "p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "mean_ms": round(statistics.fmean(latencies), 2) if latencies else 0.0}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]  # nearest-rank percentile


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    body = make_image(args.image)
    process = None
    url = args.url
    if url is None:
        process, url = start_server(args.model, args.detector, args.max_concurrent, args.tta)
    try:
        host, port = check_loopback(url)
        if args.warmup:
            run_load(host, port, body, args.warmup, min(args.concurrency, args.warmup), args.max_seconds)
        result = run_load(host, port, body, args.requests, args.concurrency, args.max_seconds)
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.request("GET", "/api/model")
        result["model"] = json.loads(connection.getresponse().read()).get("name")
        connection.close()
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    result.update(url=url, image_bytes=len(body), cpu_count=os.cpu_count())
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['requests']} requests to {url} (model {result['model']}) at concurrency "
              f"{result['concurrency']} in {result['seconds']} s: {result['requests_per_s']} requests/s; "
              f"latency p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms; "
              f"{result['errors']} errors")
        for error in result["first_errors"]:
            print(f"  error: {error}")
        if result["skipped_by_time_limit"]:
            print(f"  {result['skipped_by_time_limit']} requests not sent: --max-seconds {args.max_seconds} reached")
    return 1 if result["errors"] or result["skipped_by_time_limit"] else 0


if __name__ == "__main__":
    sys.exit(main())
