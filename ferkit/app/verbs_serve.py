"""CLI verb ``ferkit serve``: the web page and REST API of :mod:`ferkit.app.server` under uvicorn."""
from __future__ import annotations

import argparse
import socket
import sys

from ..backend_names import BACKEND_CHOICES
from ..detectors import DETECTOR_CHOICES
from ..tta import TTA_CHOICES
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the ferkit parser."""
    from .settings import DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_UPLOAD_MB

    p = sub.add_parser("serve", help="web page and REST API for emotion recognition",
                       description="Serve a page (photo or camera) and a REST API (POST /api/predict, "
                                   "GET /api/health, GET /api/model, schema at /openapi.json).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 exposes the server to the network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--model", default="default",
                   help="shipped model name (default, fast, default-b, or best = default+default-b), a training run "
                        "directory or a .safetensors file; "
                        "several joined by + (default+fast) form an ensemble")
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                   help="face detector: auto (RetinaFace when installed, else Haar), retinaface, haar, "
                        "or none (each image is one cropped face)")
    p.add_argument("--tta", choices=TTA_CHOICES, default="auto",
                   help="test-time views: auto (default: tencrop, as for any photo), none, flip (2x the classifier's "
                        "cost) or tencrop (10x)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="inference engine: auto (default), onnx, torch, or int8 (the model's quantised graph)")
    p.add_argument("--max-concurrent", type=int, default=DEFAULT_MAX_CONCURRENT,
                   help="images decoded and classified at once; more requests wait their turn "
                        f"(default {DEFAULT_MAX_CONCURRENT}; decoding a 40-megapixel photo may take ~400-550 MB)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest accepted upload in MB; bigger requests get 413 (default {DEFAULT_MAX_UPLOAD_MB:g})")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(run=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from .server import create_app, is_loopback
    from .settings import LOOPBACK_NAMES

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    if args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if not 0.001 <= args.max_upload_mb <= 1024:  # below 1 KB no picture fits; NaN and inf fail this too
        raise UsageError(f"--max-upload-mb must be between 0.001 (1 KB) and 1024, got {args.max_upload_mb:g}")
    listening = _listen(args.host, args.port)  # a taken port or unknown host fails before the model loads
    from ..vision.recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer(model=args.model, detector=args.detector, tta=args.tta, backend=args.backend)
    loopback = is_loopback(args.host)
    app = create_app(recognizer, max_upload_mb=args.max_upload_mb, max_concurrent=args.max_concurrent,
                     allowed_hosts=LOOPBACK_NAMES + (args.host,) if loopback else None)
    if not loopback:
        print(f"ferkit: warning: listening on {args.host}: anyone who can reach this machine can use the server",
              file=sys.stderr)
    where = f"http://{_url_host(args.host)}:{listening.getsockname()[1]}/"
    info = recognizer.info
    print(f"ferkit: serving model {info.get('model', info['name'])} ({info['name']}, "
          f"detector {info.get('detector', args.detector)}, backend {info['backend']}) on {where} "
          "(Ctrl+C to stop)", file=sys.stderr, flush=True)
    # One worker process: the model is loaded once and inference runs in its threadpool.
    uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, access_log=False)).run(sockets=[listening])
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (0: a free port), for uvicorn to serve on; an unknown host or a
    port in use is a one-line error here rather than uvicorn's log lines after "serving"."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"--host {host}: cannot listen there ({getattr(exc, 'strerror', None) or exc})") from None
    listening = socket.socket(family, kind, proto)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
    try:
        listening.bind(address)
    except OSError as exc:
        listening.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None
    return listening


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
