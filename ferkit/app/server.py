"""``ferkit serve``: a web page and a REST API for emotion recognition, built on FastAPI.

    POST /api/predict   an image (multipart field ``file`` or a raw JPEG/PNG body) -> faces found
    GET  /api/health    liveness and the model served
    GET  /api/model     name, classes, parameter count and the accuracy figures kept in the model file
    GET  /              the page (ferkit/app/static/): a photo or the camera, boxes, bars, timeline
    GET  /openapi.json  the OpenAPI schema, where FastAPI always puts it

Uploads are bounded: a declared ``Content-Length`` over the limit is refused before anything is
read, and the body is counted while it streams in, so a client that lies about (or omits) its
length is cut off at the limit instead of being buffered; and all uploads held at once (read,
waiting for a turn, analysed) share a byte budget, past which a new one gets 503. Decoding and inference run in the
threadpool, so a slow prediction never stalls the event loop (health checks and other requests
keep being answered).
"""
from __future__ import annotations

import asyncio
import io
import logging
import math
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..tta import views_for
from .settings import DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_UPLOAD_MB, HELD_UPLOADS_PER_TURN

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Raw bodies may be sent with any of these types; anything else that is not multipart is refused
# with 415 before it is read (a JSON or text body is a client mistake, not an image).
RAW_IMAGE_TYPES = ("image/", "application/octet-stream")
log = logging.getLogger("ferkit.serve")
# python-multipart logs each malformed body before raising; the client's 400 answer says it already,
# and the bare line (no handler is configured for it) would look like a crash in the server's output.
logging.getLogger("python_multipart").setLevel(logging.ERROR)


class ApiError(Exception):
    """An expected failure, answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class UploadBytesHeld:
    """The bytes of all uploads the server holds at once (being read, waiting for their turn, being
    analysed).  The decode semaphore bounds the work, not the waiting: without this, a crowd of
    clients could make the server buffer any number of full-size uploads.  Past ``budget`` a
    request is answered 503 at once; each request gives its bytes back when it ends."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0

    def take(self, count: int) -> None:
        if self.held + count > self.budget:
            raise ApiError(503, f"server busy: {self.held:,} bytes of other uploads are waiting; try again "
                                "in a moment", headers={"Retry-After": "1"})
        self.held += count

    def give_back(self, count: int) -> None:
        self.held -= count


class FaceOut(BaseModel):
    box: list[int] = Field(description="x, y, width, height in pixels of the uploaded image")
    emotion: str
    confidence: float
    scores: dict[str, float]


class PredictOut(BaseModel):
    faces: list[FaceOut]
    model: str
    ms: float = Field(description="server time for decoding, detection and classification")
    width: int
    height: int


class HealthOut(BaseModel):
    status: str
    model: str
    max_upload_bytes: int = Field(description="largest request body accepted; bigger ones get 413")


class ModelOut(BaseModel):
    name: str = Field(description="the model as the server was started with it: default, fast, best, a file name")
    architecture: str = Field(description="its network (vgg_fer, ...); an ensemble's joined by +")
    classes: list[str]
    parameters: int
    input_size: int
    accuracy: dict[str, float] = Field(description="accuracy-like figures found in the model file's metadata")
    views: str = Field(description="the test-time views each face is classified with: none (the centre view), "
                                   "flip or tencrop; the accuracy keys publictest_acc_VIEWS match it")
    backend: str = Field(description="what runs the network: torch, onnx or int8 (whose accuracy is int8.*)")
    meta: dict[str, Any]


class ErrorOut(BaseModel):
    error: str


_ERRORS = {code: {"model": ErrorOut} for code in (400, 413, 415, 500, 503)}
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"],
                           "properties": {"file": {"type": "string", "format": "binary"}}}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def create_app(recognizer_or_model: Any = "default", max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, *,
               max_concurrent: int = DEFAULT_MAX_CONCURRENT, allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """The ferkit web application around an ``EmotionRecognizer`` (or a model spec to build one).

    The recognizer is built here, not on first request, so a bad ``--model`` fails at start-up
    with a one-line message instead of on every request.  At most ``max_concurrent`` images are
    decoded and classified at once, and uploads waiting for their turn may hold at most
    ``HELD_UPLOADS_PER_TURN`` full-size uploads per turn in memory (more get 503).  With ``allowed_hosts``, a request whose ``Host`` header names
    another host gets 400 (``ferkit serve`` sets it to this machine's names when bound to loopback).
    """
    if max_upload_mb <= 0 or not math.isfinite(max_upload_mb):
        raise ValueError(f"max upload size must be a positive number of MB, got {max_upload_mb}")
    if max_concurrent < 1:
        raise ValueError(f"max concurrent predictions must be at least 1, got {max_concurrent}")
    recognizer = _as_recognizer(recognizer_or_model)
    info = recognizer.info
    limit = int(max_upload_mb * 1024 * 1024)
    model_out = _model_summary(info)

    # FastAPI's /docs and /redoc pages load their scripts from a CDN: they are left out so that
    # nothing the server offers depends on the internet; the schema itself is at /openapi.json.
    app = FastAPI(title="ferkit", version=_version(), docs_url=None, redoc_url=None,
                  description="Facial expression recognition: faces, their emotion and the seven class scores.")
    app.state.recognizer = recognizer
    app.state.max_upload_bytes = limit
    busy = asyncio.Semaphore(max_concurrent)
    held = UploadBytesHeld(limit * max_concurrent * HELD_UPLOADS_PER_TURN)
    app.state.upload_bytes_held = held
    hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}

    if hosts is not None:
        @app.middleware("http")
        async def _check_host(request: Request, call_next):
            host = _host_name(request.headers.get("host", ""))
            if host not in hosts:
                return JSONResponse({"error": f"unexpected Host header {host!r}: this server answers "
                                              f"{', '.join(sorted(hosts))}"}, status_code=400)
            return await call_next(request)

    @app.middleware("http")
    async def _same_origin_and_headers(request: Request, call_next):
        # A page on another site may make the browser POST here (a form needs no CORS preflight): it
        # cannot read the answer, but it would make this machine decode what it sends.  Browsers say
        # where a request comes from; clients that are no browser (curl, scripts) send neither header.
        if request.method not in ("GET", "HEAD", "OPTIONS") and _cross_site(request):
            return JSONResponse({"error": "cross-site request refused: use this server's own page, or a "
                                          "client that is not a browser"}, status_code=403)
        response = await call_next(request)
        for name, value in _SAFE_HEADERS.items():  # every answer, the page under /static/ too
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid request", "details": _jsonable(exc.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback for the operator; the client gets one line and the server goes on.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    @app.get("/api/health", response_model=HealthOut, tags=["api"])
    async def health() -> dict:
        return {"status": "ok", "model": model_out["name"], "max_upload_bytes": limit}

    @app.get("/api/model", response_model=ModelOut, tags=["api"])
    async def model_info() -> dict:
        return model_out

    @app.post("/api/predict", response_model=PredictOut, responses=_ERRORS, openapi_extra=_PREDICT_BODY,
              tags=["api"], summary="Find the faces in an image and classify their expression")
    async def predict(request: Request) -> dict:
        taken = 0

        def take(count: int) -> None:
            nonlocal taken
            held.take(count)
            taken += count

        try:
            data = await _read_image_upload(request, limit, take)
            async with busy:
                start = time.perf_counter()
                (width, height), faces = await run_in_threadpool(_analyse, recognizer, data)
                ms = (time.perf_counter() - start) * 1000.0
        finally:
            held.give_back(taken)
        return {"faces": [face.to_dict() for face in faces], "model": model_out["name"], "ms": round(ms, 2),
                "width": width, "height": height}

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


# The page loads nothing from elsewhere, and no other site may frame it; the policy makes the browser
# enforce that, on every answer (the page is also reachable as /static/index.html).
_SAFE_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
                                "connect-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
                                "base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
}
_PAGE_HEADERS = {**_SAFE_HEADERS, "Cache-Control": "no-cache"}


def _cross_site(request: Request) -> bool:
    """Whether a browser sent ``request`` from a page of another origin than this server's."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    if origin == "null":  # a sandboxed frame or a file:// page
        return True
    return origin.split("://", 1)[-1].rstrip("/").lower() != request.headers.get("host", "").lower()


async def _read_image_upload(request: Request, limit: int, take: Callable[[int], None]) -> bytes:
    """The image bytes of a predict request, read with at most ``limit`` bytes ever held; ``take``
    is told of every chunk before it is kept (and may refuse it)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(400, f"bad Content-Length header {declared!r}") from None
        if length > limit:
            raise ApiError(413, f"upload of {length:,} bytes is over the limit of {limit:,} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    multipart = content_type == "multipart/form-data"
    if content_type and not multipart and not content_type.startswith(RAW_IMAGE_TYPES):
        raise ApiError(415, f"unsupported content type {content_type!r}: send an image as the body "
                            "(image/jpeg, image/png) or as the multipart field 'file'")
    body = await _read_bounded(request, limit, take)
    if multipart:
        body = await _multipart_file(request, body)
    if not body:
        raise ApiError(400, "empty upload: no image data")
    return body


async def _read_bounded(request: Request, limit: int, take: Callable[[int], None]) -> bytes:
    chunks, total = [], 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise ApiError(413, f"upload is over the limit of {limit:,} bytes")
            take(len(chunk))
            chunks.append(chunk)
    except ClientDisconnect:
        # The client hung up mid-upload: nobody will read an answer, but it is no server error.
        raise ApiError(400, "the client disconnected before the upload was complete") from None
    return b"".join(chunks)


async def _multipart_file(request: Request, body: bytes) -> bytes:
    """The ``file`` field of a multipart body already read (and so already bounded) into memory."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(request.scope, replay).form(max_files=4, max_fields=16) as form:
            items = form.getlist("file")
            files = [name for name, value in form.multi_items() if isinstance(value, UploadFile)]
            if not items:
                raise ApiError(400, "multipart body has no field named 'file'")
            if len(items) > 1 or len(files) > 1:  # one answer per image: none may go unanswered
                raise ApiError(400, f"send one image per request ({len(files)} files in this one)")
            if not isinstance(items[0], UploadFile):
                raise ApiError(400, "multipart field 'file' must be a file, not text")
            return await items[0].read()
    except StarletteHTTPException as exc:  # malformed multipart
        raise ApiError(400, f"bad multipart body: {exc.detail}") from None


def _decode(data: bytes) -> tuple[Any, float]:
    """Bytes -> image array and its scale (array pixels per pixel of the upload: below 1 for a JPEG
    too large to decode whole); 415 for data that is no image format at all, 400 for a broken image."""
    from PIL import Image, UnidentifiedImageError

    from ..data.images import READABLE_FORMATS, ImageDecodeError, read_image_scaled, starts_like_a_picture

    try:
        # Only the header is parsed here; this tells "not an image" from "a damaged image". (Pillow's
        # bomb warning is about a size read_image_scaled decodes smaller or refuses.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.open(io.BytesIO(data), formats=READABLE_FORMATS).close()
    except UnidentifiedImageError:
        if starts_like_a_picture(data):  # the first bytes of a format ferkit reads, cut short in its header
            raise ApiError(400, "cannot decode the image: truncated or damaged in its header") from None
        raise ApiError(415, "not an image or an unsupported image format (send JPEG, PNG, WebP, BMP...)") from None
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - a known format with a damaged header: read_image names the problem below
        pass
    try:
        return read_image_scaled(data)
    except ImageDecodeError as exc:
        raise ApiError(400, f"cannot decode the image: {exc}") from None


def _analyse(recognizer: Any, data: bytes) -> tuple:
    """Decode and classify (in a worker thread): the upload's (width, height) and the faces found in it.

    ``EmotionRecognizer.predict`` keeps no state between calls (tracking and smoothing belong to
    its video path only), so concurrent requests from different clients cannot blend together.
    """
    from ..vision.recognizer import DecodedImage

    image, scale = _decode(data)
    faces = recognizer.predict(DecodedImage(image, scale))  # boxes and min_face in the upload's pixels
    height, width = image.shape[:2]
    return (round(width / scale), round(height / scale)), faces


def _as_recognizer(recognizer_or_model: Any) -> Any:
    if hasattr(recognizer_or_model, "predict") and hasattr(recognizer_or_model, "info"):
        return recognizer_or_model
    from ..vision.recognizer import EmotionRecognizer

    return EmotionRecognizer(model=recognizer_or_model)


def _model_summary(info: dict) -> dict:
    meta = _without_paths(dict(info.get("meta") or {}))  # where files lie on the server is no client's business
    meta.pop("face_sample", None)  # 4 KB of training-face hashes, for evaluate's caveat only
    if isinstance(meta.get("calibration"), dict):  # and the calibration faces' 4 KB, for the same caveat
        meta["calibration"] = {k: v for k, v in meta["calibration"].items() if k != "face_sample"}
    accuracy = {key: float(value) for key, value in _flatten(meta).items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
                and any(word in key.lower() for word in ("acc", "f1", "nll", "ece"))}
    architecture = str(info.get("name", "model"))
    return {"name": str(info.get("model", architecture)), "architecture": architecture,
            "classes": list(info.get("classes", [])),
            "parameters": int(info.get("parameters", 0)), "input_size": int(info.get("input_size", 48)),
            "accuracy": accuracy, "views": views_for(str(info.get("tta", "auto")), int(info.get("input_size", 48))),
            "backend": str(info.get("backend", "torch")), "meta": _jsonable(meta)}


def _without_paths(value: Any) -> Any:
    """The metadata without the server's folders: ``path`` keys dropped, and every absolute path in a value
    (a training configuration's data and out, a recorded command) cut to its last part."""
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items() if k != "path"}
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(_last_part, value)
    return value


def _last_part(match: re.Match) -> str:
    """The matched absolute path cut to its last part (what precedes it kept)."""
    path = match.group(2).rstrip("/\\").replace("\\", "/")
    return match.group(1) + path.rsplit("/", 1)[-1]


# An absolute path (/home/me/..., ~/..., C:\\Users\\...) at the start of a value or after a space, = or +.
_ABSOLUTE_PATH = re.compile(r"(^|[\s=+'\"])((?:/|~/|[A-Za-z]:[\\/])[^\s+'\"]*)")


def _flatten(meta: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in meta.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def _version() -> str:
    from .. import __version__

    return __version__


def _host_name(header: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = ["create_app", "ApiError", "is_loopback", "DEFAULT_MAX_UPLOAD_MB", "STATIC_DIR"]
