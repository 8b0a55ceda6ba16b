"""The REST API of ``ferkit serve`` through FastAPI's TestClient (the live server and the page are
tested in tests/test_browser.py)."""
from __future__ import annotations

import io
import json
import re
import struct
import threading
import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import packaged_faces
from ferkit.app.cli import main as cli_main
from ferkit.app.server import create_app, is_loopback
from ferkit.data.classes import CLASSES
from ferkit.vision.recognizer import EmotionRecognizer


def compose_photo(face: np.ndarray, size: int = 320, face_side: int = 192) -> np.ndarray:
    """A FER2013 face upscaled onto a plain grey background, as a face in a larger photo."""
    canvas = np.full((size, size), 128, np.uint8)
    top = (size - face_side) // 2
    canvas[top:top + face_side, top:top + face_side] = cv2.resize(face, (face_side, face_side),
                                                                  interpolation=cv2.INTER_CUBIC)
    return canvas


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    """An untrained tiny model file (as conftest's ``tiny_model_file``, but shared by the module),
    with accuracy figures in its metadata as a training run writes them."""
    import torch

    from ferkit.data.preprocess import Normalizer
    from ferkit.models import create_model
    from ferkit.models.io import save_model_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model_file(path, create_model("tiny"), name="tiny", options={}, normalizer=Normalizer.identity(),
                    meta={"val_acc": 0.625, "test_acc": 0.61, "epoch": 12, "run": "runs/x"})
    return str(path)


@pytest.fixture(scope="module")
def recognizer(model_path) -> EmotionRecognizer:
    return EmotionRecognizer(model=model_path, detector="haar")


def photo_with_one_face(detect) -> np.ndarray:
    """The first composed photo of a packaged face in which ``detect`` finds exactly one face
    (packaged faces, so that these tests run on any checkout, without ../shared)."""
    for face in packaged_faces():
        photo = compose_photo(face)
        if len(detect(photo)) == 1:
            return photo
    pytest.fail("the detector found no face in any composed photo of the packaged faces")


@pytest.fixture(scope="module")
def face_photo(recognizer) -> np.ndarray:
    """A composed photo in which the Haar detector finds exactly one face."""
    return photo_with_one_face(recognizer.detect)


@pytest.fixture(scope="module")
def client(recognizer):
    # 0.05 MB = 52,428 bytes: small enough that the tests' oversized bodies stay small.
    with TestClient(create_app(recognizer, max_upload_mb=0.05)) as test_client:
        yield test_client


def assert_error(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"error"} and words in body["error"].lower(), body


def assert_face(face: dict) -> None:
    assert set(face) >= {"box", "emotion", "confidence", "scores"}
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert face["box"][2] > 0 and face["box"][3] > 0
    assert list(face["scores"]) == list(CLASSES)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)
    assert face["confidence"] == pytest.approx(face["scores"][face["emotion"]])


# ------------------------------------------------------------------ endpoints

def test_health(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    # The page reads the limit to decide when to re-encode a photo before upload.
    assert response.json() == {"status": "ok", "model": "tiny.safetensors", "max_upload_bytes": int(0.05 * 1024 * 1024)}


def test_model_reports_classes_parameters_and_accuracy_from_meta(client, recognizer):
    info = client.get("/api/model").json()
    assert (info["name"], info["architecture"]) == ("tiny.safetensors", "tiny")  # the file served, its network
    assert info["classes"] == list(CLASSES)
    assert info["parameters"] == recognizer.info["parameters"] > 0
    assert info["input_size"] == 48
    # Accuracy-like figures are picked out of the file's metadata; other entries are not figures.
    assert info["accuracy"] == {"val_acc": 0.625, "test_acc": 0.61}
    assert info["meta"]["epoch"] == 12
    # --tta auto: faces in uploaded pictures are stills, ten-crop, which for this 48 px model is the flip pair
    assert info["views"] == "flip"


def test_model_says_the_views_the_server_classifies_with(model_path):
    with TestClient(create_app(EmotionRecognizer(model=model_path, detector="haar", tta="none"))) as client:
        assert client.get("/api/model").json()["views"] == "none"


def test_openapi_schema_documents_the_api(client):
    schema = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/health", "/api/model"} <= set(schema["paths"])
    body = schema["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"]
    assert {"image/jpeg", "image/png"} <= set(body)
    assert {"413", "415", "400"} <= set(schema["paths"]["/api/predict"]["post"]["responses"])
    # The CDN-backed documentation pages are switched off: nothing served depends on the internet.
    assert client.get("/docs").status_code == 404


def test_page_and_static_files_are_served_with_a_local_only_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200, asset
    assert client.get("/static/nothing.js").status_code == 404


def test_the_page_under_static_keeps_the_policy_and_the_page_answers_head(client):
    """/static/index.html is the same page as /: it once came without the policy (any site could frame it)."""
    page = client.get("/static/index.html")
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.head("/").status_code == 200


def test_a_page_of_another_site_cannot_make_the_browser_post_here(client, face_photo):
    """A form on any web page may POST to 127.0.0.1 without a CORS preflight: the server once did the work."""
    upload = {"file": ("face.jpg", encode(face_photo), "image/jpeg")}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        assert_error(client.post("/api/predict", files=upload, headers=headers), 403, "cross-site request refused")
    # The server's own page (same origin) and clients that are no browser (no Origin) are answered.
    own = client.post("/api/predict", files=upload, headers={"Origin": "http://testserver",
                                                              "Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 200, own.text
    assert client.post("/api/predict", files=upload).status_code == 200


def test_several_files_in_one_upload_are_refused_not_dropped(client, face_photo):
    """form.get("file") took the last of several files: the others went unanswered."""
    one = ("face.jpg", encode(face_photo), "image/jpeg")
    response = client.post("/api/predict", files=[("file", one), ("file", one)])
    assert_error(response, 400, "send one image per request (2 files in this one)")
    response = client.post("/api/predict", files=[("file", one), ("other", one)])
    assert_error(response, 400, "send one image per request (2 files in this one)")


def test_model_info_shows_no_server_folder():
    """train_config.data, out and the recorded command held the server's absolute paths (a user's home)."""
    with TestClient(create_app(EmotionRecognizer("fast", detector="haar", backend="int8"))) as client:
        info = client.get("/api/model").json()
    assert info["meta"]["train_config"]["data"] == "fer2013" and info["backend"] == "int8"
    assert not re.search(r"(^|[\s=+'\"])(/|~/)\w", json.dumps(info["meta"]))


def test_page_assets_name_no_other_host():
    from ferkit.app.server import STATIC_DIR

    names = sorted(path.name for path in STATIC_DIR.iterdir())
    assert names == ["app.js", "index.html", "style.css"]
    for name in names:
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        # No absolute or protocol-relative address: everything is fetched from this server.
        assert "://" not in text and 'src="//' not in text and 'href="//' not in text, name


def test_a_jpeg_too_large_to_decode_whole_is_answered_in_its_own_pixels(client, face_photo, monkeypatch):
    """A JPEG over the pixel limit is decoded at 1/2 (or 1/4, 1/8) size; its width, height and boxes
    were once given in the pixels of that smaller picture."""
    import functools

    import ferkit.data.images as images

    whole = client.post("/api/predict", content=encode(face_photo), headers={"content-type": "image/jpeg"}).json()
    pixels = face_photo.shape[0] * face_photo.shape[1]
    monkeypatch.setattr(images, "read_image_scaled", functools.partial(images.read_image_scaled, max_pixels=pixels // 3))
    response = client.post("/api/predict", content=encode(face_photo), headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    halved = response.json()
    assert (halved["width"], halved["height"]) == (face_photo.shape[1], face_photo.shape[0])
    assert len(halved["faces"]) == len(whole["faces"]) == 1
    for a, b in zip(halved["faces"][0]["box"], whole["faces"][0]["box"]):
        assert abs(a - b) <= 0.1 * whole["faces"][0]["box"][2]  # the same face, at full scale


def test_predict_multipart_finds_the_face(client, face_photo):
    response = client.post("/api/predict", files={"file": ("face.jpg", encode(face_photo), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny.safetensors" and body["ms"] > 0
    assert (body["width"], body["height"]) == (face_photo.shape[1], face_photo.shape[0])
    assert len(body["faces"]) == 1
    assert_face(body["faces"][0])
    x, y, w, h = body["faces"][0]["box"]
    # The face was pasted in the middle of the photo: the box must overlap that square.
    assert x < 256 and y < 256 and x + w > 64 and y + h > 64


def test_predict_raw_bodies_match_the_recognizer(client, recognizer, face_photo):
    expected = [face.to_dict() for face in recognizer.predict(face_photo)]
    for ext, content_type in ((".png", "image/png"), (".png", "application/octet-stream")):
        response = client.post("/api/predict", content=encode(face_photo, ext), headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text
        faces = response.json()["faces"]
        assert [f["box"] for f in faces] == [f["box"] for f in expected]
        for got, want in zip(faces, expected):
            assert got["emotion"] == want["emotion"]
            for name in CLASSES:
                assert got["scores"][name] == pytest.approx(want["scores"][name], abs=1e-5)


def test_predict_image_without_faces_returns_an_empty_list(client):
    response = client.post("/api/predict", content=encode(np.full((120, 160, 3), 200, np.uint8), ".png"),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    assert response.json()["faces"] == []


def test_predict_other_formats_and_modes(client, face_photo):
    # An RGBA WebP, a palette GIF and a 16-bit PNG all decode through ferkit.data.images.
    rgba = Image.fromarray(face_photo).convert("RGBA")
    for fmt, image in (("WEBP", rgba), ("GIF", Image.fromarray(face_photo).convert("P")),
                       ("PNG", Image.fromarray(face_photo.astype(np.uint16) * 257))):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        response = client.post("/api/predict", files={"file": ("x", buffer.getvalue(), "application/octet-stream")})
        assert response.status_code == 200, (fmt, response.text)
        assert len(response.json()["faces"]) == 1, fmt


# ------------------------------------------------------------------ limits and errors

def test_declared_length_over_the_limit_is_413(client):
    response = client.post("/api/predict", content=b"\xff" * 60_000, headers={"Content-Type": "image/jpeg"})
    assert_error(response, 413, "limit")


def test_streamed_body_over_the_limit_is_413(client):
    # A generator body goes out with no Content-Length: the limit is enforced while reading.
    def chunks():
        for _ in range(8):
            yield b"\xff" * 10_000

    response = client.post("/api/predict", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_error(response, 413, "limit")


def test_multipart_over_the_limit_is_413(client):
    response = client.post("/api/predict", files={"file": ("big.jpg", b"\xff" * 60_000, "image/jpeg")})
    assert_error(response, 413, "limit")


def test_non_image_content_types_are_415(client):
    for content_type, body in (("text/plain", b"hello"), ("application/json", b'{"image": 1}')):
        response = client.post("/api/predict", content=body, headers={"Content-Type": content_type})
        assert_error(response, 415, "content type")


def test_bytes_that_are_no_image_are_415(client):
    response = client.post("/api/predict", content=b"MZ\x90\x00 not a picture at all" * 10,
                           headers={"Content-Type": "image/jpeg"})
    assert_error(response, 415, "not an image")
    # Formats ferkit does not read, whose Pillow decoders fail in odd ways (a DDS header raised
    # NotImplementedError: a 500) or run other programs (EPS: Ghostscript).
    dds = b"DDS " + struct.pack("<7I", 124, 0x1007, 20, 20, 60, 0, 0) + bytes(44) + struct.pack("<2I", 32, 0) + bytes(48)
    for data in (dds, b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"):
        assert_error(client.post("/api/predict", content=data, headers={"Content-Type": "image/x-other"}),
                     415, "not an image")
    response = client.post("/api/predict", files={"file": ("notes.txt", b"just some text\n", "text/plain")})
    assert_error(response, 415, "not an image")


def test_corrupt_images_are_400(client, face_photo):
    jpeg = encode(face_photo)
    png = bytearray(encode(face_photo, ".png"))
    png[60:200] = b"\x00" * 140  # the header survives, the compressed data does not
    # jpeg[:20] is cut inside its header: it was once "not an image" (415)
    for body in (jpeg[: len(jpeg) // 3], bytes(png), jpeg[:20]):
        response = client.post("/api/predict", content=body, headers={"Content-Type": "image/jpeg"})
        assert_error(response, 400, "cannot decode")


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    data = bytearray(encode(np.zeros((8, 8), np.uint8), ".png"))
    # IHDR's data starts at byte 16 (8 signature + 4 length + 4 type); its CRC follows 13 bytes on.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def test_images_with_too_many_pixels_are_refused_without_decoding(client):
    for width, height in ((9000, 9000), (30000, 30000)):
        response = client.post("/api/predict", content=_png_claiming(width, height),
                               headers={"Content-Type": "image/png"})
        assert_error(response, 400, "too large")


def test_empty_and_malformed_requests_are_400(client):
    assert_error(client.post("/api/predict", content=b"", headers={"Content-Type": "image/png"}), 400, "empty")
    assert_error(client.post("/api/predict", data={"other": "x"}, files={"image": ("a.png", b"x", "image/png")}),
                 400, "'file'")
    assert_error(client.post("/api/predict", data={"file": "not a file"},
                             files={"other": ("a.png", b"x", "image/png")}), 400, "must be a file")
    response = client.post("/api/predict", content=b"--xyz\r\nbroken",
                           headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert response.status_code == 400 and "error" in response.json()


def test_a_malformed_multipart_body_leaves_no_bare_log_line(client, caplog):
    """python-multipart's warning reached the server's terminal as a bare line; the 400 says it all."""
    import logging

    with caplog.at_level(logging.DEBUG, logger="ferkit"):
        response = client.post("/api/predict", content=b"garbage here",
                               headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert response.status_code == 400
    assert not [r for r in caplog.records if r.name.startswith("python_multipart")]


def test_unknown_paths_and_methods_answer_json(client):
    assert_error(client.get("/api/nothing"), 404, "not found")
    assert_error(client.get("/api/predict"), 405, "method not allowed")


def test_server_survives_a_burst_of_bad_requests(client, face_photo):
    jpeg = encode(face_photo)
    bad = [
        dict(content=b"\xff" * 60_000, headers={"Content-Type": "image/jpeg"}),
        dict(content=b"garbage" * 50, headers={"Content-Type": "image/png"}),
        dict(content=jpeg[:500], headers={"Content-Type": "image/jpeg"}),
        dict(content=b"", headers={"Content-Type": "image/jpeg"}),
        dict(content=b"{}", headers={"Content-Type": "application/json"}),
        dict(files={"nope": ("a", b"a", "text/plain")}),
    ]
    statuses = []
    for i in range(60):
        response = client.post("/api/predict", **bad[i % len(bad)])
        statuses.append(response.status_code)
        assert "error" in response.json()
    assert set(statuses) == {413, 415, 400}
    assert client.get("/api/health").json()["status"] == "ok"
    response = client.post("/api/predict", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200 and len(response.json()["faces"]) == 1


class _ControlledRecognizer:
    """A recognizer stand-in whose ``predict`` blocks until the test releases it, or raises."""

    info = {"name": "stub", "classes": list(CLASSES), "parameters": 1, "input_size": 48, "meta": {}}

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def predict(self, image):
        if self.fail:
            raise RuntimeError("model exploded")
        self.started.set()
        self.release.wait(timeout=30)
        return []


def test_inference_does_not_block_other_requests():
    stub = _ControlledRecognizer()
    png = encode(np.zeros((32, 32), np.uint8), ".png")
    results: dict = {}
    with TestClient(create_app(stub)) as client:
        def slow():
            results["predict"] = client.post("/api/predict", content=png, headers={"Content-Type": "image/png"})

        thread = threading.Thread(target=slow)
        thread.start()
        try:
            assert stub.started.wait(timeout=30), "predict never reached the recognizer"
            # The prediction is still held inside the recognizer; the event loop must answer anyway.
            health = client.get("/api/health")
            assert health.status_code == 200
            assert "predict" not in results and thread.is_alive()
        finally:
            stub.release.set()
            thread.join(timeout=30)
    assert results["predict"].status_code == 200


def test_at_most_max_concurrent_images_are_analysed_at_once():
    """Each decoded photo may take ~100 MB: the others wait instead of piling up in memory."""

    class Counting(_ControlledRecognizer):
        def __init__(self) -> None:
            super().__init__()
            self.lock, self.running, self.most = threading.Lock(), 0, 0

        def predict(self, image):
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            # The first image is held until all three uploads are in the server (their bytes held while
            # they wait for a turn), so the others are there to run at once if the limit let them.
            deadline = time.monotonic() + 30
            while held.held < 3 * len(png) and time.monotonic() < deadline and not self.saw_all:
                time.sleep(0.005)
            self.saw_all = True
            with self.lock:
                self.running -= 1
            return []

    stub = Counting()
    stub.saw_all = False
    png = encode(np.zeros((32, 32), np.uint8), ".png")
    app = create_app(stub, max_concurrent=1)
    held = app.state.upload_bytes_held
    with TestClient(app) as client:
        codes = []
        threads = [threading.Thread(target=lambda: codes.append(client.post(
            "/api/predict", content=png, headers={"Content-Type": "image/png"}).status_code)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert codes == [200, 200, 200] and stub.saw_all and stub.most == 1


def test_uploads_waiting_for_their_turn_hold_a_bounded_number_of_bytes():
    """The decode semaphore bounds the work, not the waiting: past HELD_UPLOADS_PER_TURN full-size
    uploads per turn, a new one is answered 503 at once instead of being buffered."""
    from ferkit.app.settings import HELD_UPLOADS_PER_TURN

    stub = _ControlledRecognizer()
    png = encode(np.random.default_rng(0).integers(0, 256, (100, 100), np.uint8), ".png")
    # The limit is 1.5 uploads, so the budget (1 turn x 4 x 1.5) holds 6 of these uploads and no 7th.
    app = create_app(stub, max_upload_mb=1.5 * len(png) / 2**20, max_concurrent=1)
    fits = int(app.state.upload_bytes_held.budget // len(png))
    assert HELD_UPLOADS_PER_TURN == 4 and fits == 6
    post = lambda client: client.post("/api/predict", content=png, headers={"Content-Type": "image/png"})  # noqa: E731
    codes: list = []
    with TestClient(app) as client:
        threads = [threading.Thread(target=lambda: codes.append(post(client).status_code)) for _ in range(fits)]
        for thread in threads:
            thread.start()
        try:
            assert stub.started.wait(timeout=30), "predict never reached the recognizer"
            for _ in range(300):  # until all of them are read and waiting
                if app.state.upload_bytes_held.held == fits * len(png):
                    break
                threading.Event().wait(0.05)
            assert app.state.upload_bytes_held.held == fits * len(png)
            refused = post(client)
            assert_error(refused, 503, "busy")
            assert refused.headers["retry-after"] == "1"
        finally:
            stub.release.set()
            for thread in threads:
                thread.join(timeout=30)
        assert codes == [200] * fits
        assert app.state.upload_bytes_held.held == 0  # every request gave its bytes back
        assert post(client).status_code == 200
        assert_error(client.post("/api/predict", content=b"x" * len(png), headers={"Content-Type": "image/png"}),
                     415, "not an image")
        assert app.state.upload_bytes_held.held == 0  # failed requests too


def test_a_loopback_server_refuses_other_host_names():
    """DNS rebinding: a page served as evil.example whose name now points at 127.0.0.1 sends
    ``Host: evil.example``; the server bound to this machine answers only its own names."""
    stub = _ControlledRecognizer()
    stub.release.set()
    app = create_app(stub, allowed_hosts=("localhost", "127.0.0.1", "::1"))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/health").status_code == 200
        for host in ("localhost:8000", "[::1]:8000", "127.0.0.1"):
            assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
        assert_error(client.get("/api/health", headers={"Host": "evil.example:8000"}), 400, "host")
        assert_error(client.get("/", headers={"Host": "evil.example"}), 400, "host")


def test_unexpected_errors_are_500_json_and_the_server_goes_on():
    stub = _ControlledRecognizer()
    stub.release.set()
    png = encode(np.zeros((32, 32), np.uint8), ".png")
    with TestClient(create_app(stub), raise_server_exceptions=False) as client:
        stub.fail = True
        assert_error(client.post("/api/predict", content=png, headers={"Content-Type": "image/png"}), 500,
                     "internal error")
        stub.fail = False
        assert client.post("/api/predict", content=png, headers={"Content-Type": "image/png"}).status_code == 200


def test_create_app_builds_a_recognizer_from_a_model_file(tiny_model_file):
    with TestClient(create_app(str(tiny_model_file))) as client:
        assert client.get("/api/model").json()["name"] == "tiny.safetensors"


def test_a_shipped_ensemble_is_named_with_its_figures_and_no_server_paths():
    """`best` was once reported as "vgg_fer+vgg_fer" with no figures, and its members' absolute paths."""
    with TestClient(create_app(EmotionRecognizer("best", detector="haar"))) as client:
        info = client.get("/api/model").json()
    assert (info["name"], info["architecture"]) == ("best", "vgg_fer+vgg_fer")
    assert 0.6 < info["accuracy"]["publictest_acc_tencrop"] < 1
    assert "path" not in json.dumps(info["meta"]) and "/" not in json.dumps(info["meta"])


def test_model_info_carries_no_face_hashes():
    """The shipped model's training and calibration face samples (256 hashes each, for evaluate's caveats) made
    up nine tenths of /api/model's answer."""
    with TestClient(create_app(EmotionRecognizer("default", detector="haar"))) as client:
        info = client.get("/api/model").json()
    assert "face_sample" not in json.dumps(info) and len(json.dumps(info)) < 4000
    assert "ece_after" in info["meta"]["calibration"]


@pytest.mark.parametrize("limit", [0, -1, float("nan")])
def test_create_app_refuses_a_bad_limit(limit):
    with pytest.raises(ValueError, match="positive"):
        create_app(_ControlledRecognizer(), max_upload_mb=limit)


# ------------------------------------------------------------------ command line

def test_serve_verb_reports_a_missing_model_in_one_line(tmp_path, capsys):
    code = cli_main(["serve", "--model", str(tmp_path / "none.safetensors"), "--port", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("ferkit: error:") and "none.safetensors" in err and len(err.splitlines()) == 1


def test_serve_verb_refuses_bad_options(tiny_model_file, capsys):
    assert cli_main(["serve", "--model", str(tiny_model_file), "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb" in capsys.readouterr().err
    assert cli_main(["serve", "--model", str(tiny_model_file), "--max-upload-mb", "1e-300"]) == 2  # every upload 413
    assert "--max-upload-mb" in capsys.readouterr().err
    assert cli_main(["serve", "--model", str(tiny_model_file), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    assert cli_main(["serve", "--model", str(tiny_model_file), "--detector", "crystal-ball"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ferkit serve: error:") and "crystal-ball" in err and len(err.splitlines()) == 1


def test_serve_on_a_taken_port_or_unknown_host_is_a_one_line_error(tiny_model_file, capsys):
    """Said before the model loads, in one line, not as uvicorn's log after "serving"."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli_main(["serve", "--model", str(tiny_model_file), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert f"--port {port}: cannot listen there" in err and "serving" not in err
        assert len(err.strip().splitlines()) == 1
    assert cli_main(["serve", "--model", str(tiny_model_file), "--host", "no-such-host.invalid"]) == 2
    err = capsys.readouterr().err
    assert "--host no-such-host.invalid: cannot listen there" in err and len(err.strip().splitlines()) == 1


def test_serve_defaults_to_loopback():
    from ferkit.app.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000 and args.max_upload_mb == 10
    assert is_loopback(args.host) and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_error_body_is_valid_json_for_every_status(client):
    # Every error path answers one JSON object whose "error" is a single line of text.
    for response in (client.post("/api/predict", content=b"x", headers={"Content-Type": "text/csv"}),
                     client.post("/api/predict", content=b"", headers={"Content-Type": "image/png"})):
        body = json.loads(response.text)
        assert isinstance(body["error"], str) and "\n" not in body["error"]


@pytest.mark.parametrize("host, evil_answered", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_serve_verb_checks_host_names_when_bound_to_loopback(tiny_model_file, capsys, monkeypatch, host,
                                                              evil_answered):
    import uvicorn

    started = {}

    def run(server, sockets):
        started.update(app=server.config.app, address=sockets[0].getsockname())
        sockets[0].close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert cli_main(["serve", "--model", str(tiny_model_file), "--detector", "haar", "--host", host,
                     "--port", "0"]) == 0
    assert started["address"][0] == host and started["address"][1] > 0
    assert f"on http://{host}:{started['address'][1]}/" in capsys.readouterr().err  # the port it got
    with TestClient(started["app"], base_url=f"http://{host}:8000") as client:
        assert client.get("/api/health").status_code == 200
        evil = client.get("/api/health", headers={"Host": "evil.example"})
        assert (evil.status_code == 200) == evil_answered
