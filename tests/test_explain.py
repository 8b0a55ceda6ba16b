"""Views into the network: Grad-CAM, guided backpropagation, activation maximisation, and
the ``explain`` / ``visualize-filters`` verbs."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ferkit.app.cli import main
from ferkit.data.classes import CLASSES
from ferkit.data.preprocess import Normalizer
from ferkit.explain import (conv_layers, explain, grad_cam, guided_backprop, guided_grad_cam, maximize_filters,
                            model_input, resolve_layer, strongest_filters)
from ferkit.explain.filters import layer_activations
from ferkit.explain.layers import default_layer
from ferkit.models import create_model

from conftest import plumbing_faces, real_faces, synthetic_faces

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RegionNet(nn.Module):
    """A network that only ever sees one rectangle of the face: the input is masked before the
    first convolution, so its decision cannot depend on any other pixel."""

    def __init__(self, rows: slice, cols: slice, size: int = 48):
        super().__init__()
        torch.manual_seed(0)
        self.input_size = size
        mask = torch.zeros(1, 1, size, size)
        mask[..., rows, cols] = 1.0
        self.register_buffer("mask", mask)
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(16, 7)

    def forward(self, x):
        x = self.relu(self.conv1(x * self.mask))
        x = self.relu(self.conv2(F.max_pool2d(x, 2)))
        return self.fc(x.mean(dim=(2, 3)))


def face_batch(n: int = 4) -> torch.Tensor:
    faces, _ = synthetic_faces(n, seed=9)
    return model_input(Normalizer.identity(), faces, 48)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("tiny").eval()


def test_layers_found_in_execution_order():
    model = tiny_model()
    assert conv_layers(model) == ["features.0", "features.4", "features.8"]
    # Grad-CAM's default: the activation after the last convolution (batch norm and ReLU applied), whose
    # maps keep that convolution's shape; the raw convolution output, batch norm's shift still to come,
    # could blank the map.  A module called twice (RegionNet's relu) counts at its last call.
    assert resolve_layer(model)[0] == "features.10"
    assert resolve_layer(RegionNet(slice(0, 24), slice(0, 24)))[0] == "relu"
    assert [default_layer(create_model(name)) for name in ("vgg_fer", "resnet18", "sepconv")] == \
        ["features.26", "layer4.1.relu", "exit.9"]
    with pytest.raises(ValueError, match="features.0, features.4, features.8"):
        resolve_layer(model, "features.99")


# The rectangles are not symmetric under flips or transposition, so a map that came out
# mirrored or transposed would put its mass elsewhere.
REGIONS = [(slice(4, 20), slice(26, 46)), (slice(28, 46), slice(2, 22))]


@pytest.mark.parametrize("rows,cols", REGIONS)
def test_grad_cam_mass_lies_where_the_decision_is_made(rows, cols):
    model = RegionNet(rows, cols)
    cam = grad_cam(model, face_batch()).maps
    assert cam.shape == (4, 48, 48) and np.isfinite(cam).all()
    assert cam.min() >= 0 and cam.max() <= 1 + 1e-6
    # The last conv layer's cells see 5 pixels past the rectangle (conv1's 1 px, the 2x2 pool
    # and conv2's 3x3 at half resolution, then bilinear upsampling): the map may spill that far
    # (and does: the rectangle's edges are strong features), but no further.
    margin = 5
    near = np.zeros((48, 48), bool)
    near[max(rows.start - margin, 0):rows.stop + margin, max(cols.start - margin, 0):cols.stop + margin] = True
    assert near.mean() < 0.35  # a small part of the face, so the test can fail
    for m in cam:
        assert m.sum() > 0
        assert m[near].sum() / m.sum() > 0.99


@pytest.mark.parametrize("rows,cols", REGIONS)
def test_guided_backprop_is_zero_outside_the_region(rows, cols):
    model = RegionNet(rows, cols)
    maps = guided_backprop(model, face_batch()).maps
    assert maps.shape == (4, 48, 48) and np.isfinite(maps).all()
    outside = np.ones((48, 48), bool)
    outside[rows, cols] = False
    assert np.abs(maps[:, outside]).max() == 0
    assert np.abs(maps[:, ~outside]).max() > 0


def test_guided_backprop_from_a_layer_traces_its_strongest_filter():
    """Seed 001 fig. 4: guided backpropagation from a layer's strongest unit in each face, not a class."""
    model = tiny_model()
    x = face_batch()
    captured = []
    handle = model.features[4].register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    strongest = (captured[0].flatten(1).argmax(1) // captured[0][0, 0].numel()).numpy()  # the strongest unit's filter
    result = guided_backprop(model, x, layer="features.4")
    assert result.layer == "features.4" and result.filters.tolist() == strongest.tolist()
    assert result.maps.shape == (4, 48, 48) and np.isfinite(result.maps).all() and np.abs(result.maps).max() > 0
    assert not np.allclose(result.maps, guided_backprop(model, x).maps)  # not the class score's map
    with pytest.raises(ValueError, match="does not produce N x C x H x W"):
        guided_backprop(model, x, layer="classifier")


def test_explain_faces_places_the_map_where_the_view_lies_on_the_face():
    """A 44 px network sees the face's centre view; the 48 px map must put the network's evidence
    at the same face pixels (offset 2), and nothing on the border it never saw."""
    from ferkit.explain.faces import explain_faces
    from ferkit.models.io import LoadedModel

    rows, cols = slice(0, 10), slice(30, 44)  # in the 44 px view: the top right corner
    loaded = LoadedModel(RegionNet(rows, cols, size=44), Normalizer.identity(), "region", {}, list(CLASSES))
    faces, _ = synthetic_faces(3, seed=4)
    result = explain_faces(loaded, faces, "guided-backprop", tta="none")
    assert result.maps.shape == (3, 48, 48) and result.view == (2, 2, 44, 44)
    inside = np.zeros((48, 48), bool)
    inside[2:12, 32:46] = True
    assert np.abs(result.maps[:, ~inside]).max() == 0
    assert (np.abs(result.maps[:, inside]).reshape(3, -1).max(1) > 0).all()
    np.testing.assert_array_equal(result.faces, faces)  # identity preprocessing: the faces as given


def test_explain_faces_states_predicts_answer_and_takes_names(tmp_path):
    """explain_faces's probabilities are the recognizer's (ten-crop, temperature); a class name or
    synonym picks the class explained; a single colour crop is one face."""
    from ferkit.explain.faces import explain_faces
    from ferkit.vision.recognizer import EmotionRecognizer

    faces = plumbing_faces(7)
    result = explain_faces("fast", faces, "gradcam")
    expected = EmotionRecognizer(model="fast", detector="none", backend="torch").classify(faces)
    np.testing.assert_allclose(result.probs, expected, atol=1e-5)
    np.testing.assert_array_equal(result.predicted, expected.argmax(1))
    np.testing.assert_array_equal(result.targets, result.predicted)
    assert result.maps.shape == (len(faces), 48, 48) and result.layer
    happy = explain_faces("fast", cv2.cvtColor(faces[0], cv2.COLOR_GRAY2BGR), "gradcam", target="happiness")
    assert happy.targets.tolist() == [CLASSES.index("happy")] and happy.maps.shape == (1, 48, 48)
    with pytest.raises(ValueError, match="'bored'"):
        explain_faces("fast", faces[:1], target="bored")
    with pytest.raises(ValueError, match="not an ensemble"):
        explain_faces("default+fast", faces[:1])
    none = explain_faces("fast", faces[:0])
    assert none.maps.shape == (0, 48, 48) and none.probs.shape == (0, 7) and none.predicted.shape == (0,)


def test_guided_backprop_guides_other_activations_than_relu():
    """sepconv has PReLUs and no ReLU: "guided" backprop was the plain gradient under another name."""
    torch.manual_seed(0)
    model = create_model("sepconv").eval()
    x = face_batch(2)[..., 2:46, 2:46].contiguous()
    guided = guided_backprop(model, x, target=3).maps
    plain_input = x.clone().requires_grad_(True)
    model(plain_input)[:, 3].sum().backward()
    assert not np.allclose(guided, plain_input.grad.sum(1).numpy())


def test_guided_relu_differs_from_plain_gradient():
    """Guided backprop drops negative gradients at every ReLU, so it is not the plain gradient."""
    model = tiny_model()
    x = face_batch(2)
    guided = guided_backprop(model, x, target=3).maps
    plain_input = x.clone().requires_grad_(True)
    model(plain_input)[:, 3].sum().backward()
    plain = plain_input.grad.sum(1).numpy()
    assert not np.allclose(guided, plain)


def test_methods_on_tiny_model_shapes_targets_and_no_side_effects():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = face_batch(3)
    for method in ("gradcam", "guided-backprop", "guided-gradcam"):
        result = explain(model, x, method)
        assert result.maps.shape == (3, 48, 48) and np.isfinite(result.maps).all()
        assert result.probs.shape == (3, 7)
        np.testing.assert_allclose(result.probs.sum(1), 1, rtol=1e-5)
    assert (explain(model, x, "gradcam", target=5).targets == 5).all()
    predicted = model(x).argmax(1).numpy()
    assert (grad_cam(model, x).targets == predicted).all()
    gg = guided_grad_cam(model, x, target=2)
    np.testing.assert_allclose(gg.maps, guided_backprop(model, x, 2).maps * grad_cam(model, x, 2).maps, rtol=1e-5,
                               atol=1e-8)
    # The model itself is untouched: same weights, in-place ReLUs still in place.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.features[2].inplace
    with pytest.raises(ValueError, match="target class"):
        grad_cam(model, x, target=7)


def test_grad_cam_on_a_44px_model_view():
    model = create_model("vgg_fer", widths=(4, 8, 8, 8), fc=16).eval()  # a tiny VGG at 44x44 crops
    faces, _ = synthetic_faces(2)
    x = model_input(Normalizer.identity(), faces, 44)
    assert x.shape == (2, 1, 44, 44)
    result = grad_cam(model, x)
    assert result.maps.shape == (2, 44, 44) and np.isfinite(result.maps).all()
    assert result.layer == default_layer(model)


def test_the_papers_choice_keeps_the_filters_whose_images_reach_most():
    """Seed 000 keeps the filters whose optimised images reach the highest activation: every filter of
    the layer is optimised (in chunks), and those kept are the top of that ranking, best first."""
    from ferkit.explain import best_reached_filters

    model = tiny_model()
    total = model.features[4].weight.shape[0]
    _, everyone = maximize_filters(model, range(total), "features.4", steps=10, seed=0)
    layer, filters, images, reached = best_reached_filters(model, "features.4", 3, steps=10, chunk=total)
    assert layer == "features.4" and images.shape == (3, 48, 48)
    assert filters.tolist() == np.argsort(-everyone, kind="stable")[:3].tolist()
    assert np.allclose(reached, everyone[filters]) and np.all(np.diff(reached) <= 0)
    # Optimised in chunks of 2, every filter is still a candidate: the best is among those kept.
    _, chunked, _, chunked_reached = best_reached_filters(model, "features.4", total, steps=10, chunk=2)
    assert sorted(chunked.tolist()) == list(range(total)) and np.all(np.diff(chunked_reached) <= 0)


def test_activation_maximisation_raises_the_filters_activation():
    model = tiny_model()
    layer, filters, scores = strongest_filters(model, "features.4", 4)
    weights = model.features[4].weight.detach().flatten(1).norm(dim=1)
    assert filters.tolist() == torch.argsort(weights, descending=True)[:4].tolist()
    assert np.all(np.diff(scores) <= 0)
    images, reached = maximize_filters(model, filters, layer, steps=30)
    assert images.shape == (4, 48, 48) and np.isfinite(images).all()
    # The same filters on the starting noise (steps=0 returns it unchanged).
    start, at_start = maximize_filters(model, filters, layer, steps=0)
    assert np.all(reached > at_start + 0.05)
    # Ranking by activation on faces instead of weights.
    faces = face_batch(8)
    _, by_activation, mean_act = strongest_filters(model, "features.4", 3, inputs=faces)
    with torch.no_grad():
        acts = layer_activations(model, model.features[4], faces).mean(dim=(0, 2, 3))
    assert by_activation.tolist() == torch.argsort(acts, descending=True)[:3].tolist()


# ----------------------------------------------------------------------------- CLI


def _face_png(tmp_path, size: int = 48):
    faces, _ = synthetic_faces(4, seed=4)
    image = cv2.resize(faces[3], (size, size + 10), interpolation=cv2.INTER_LINEAR) if size != 48 else faces[3]
    path = tmp_path / f"face{size}.png"
    cv2.imwrite(str(path), image)
    return path


def _assert_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = cv2.imread(str(path))
    assert image is not None and image.std() > 0


def test_explain_cli(tmp_path, tiny_model_file, capsys):
    """Each --method draws its own picture (a method ignored would draw Grad-CAM three times)."""
    pictures = {}
    for method in ("gradcam", "guided-backprop", "guided-gradcam"):
        out = tmp_path / f"{method}.png"
        code = main(["explain", str(_face_png(tmp_path)), "--method", method, "--model", str(tiny_model_file),
                     "--class", "happy", "--out", str(out)])
        stdout, err = capsys.readouterr()
        assert code == 0, err
        assert "explaining happy" in stdout
        _assert_png(out)
        pictures[method] = cv2.imread(str(out)).astype(int)
    methods = list(pictures)
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            assert pictures[a].shape != pictures[b].shape or np.abs(pictures[a] - pictures[b]).mean() > 1, (a, b)


def test_explain_on_a_video_says_it_takes_a_picture(tmp_path, tiny_model_file, capsys):
    """It said "not an image or unsupported format" of a video file."""
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for _ in range(3):
        writer.write(np.full((64, 64, 3), 120, np.uint8))
    writer.release()
    code = main(["explain", str(clip), "--model", str(tiny_model_file), "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "clip.avi: a video; explain takes one picture" in err


def test_explain_cli_predicts_what_predict_does(tmp_path, capsys):
    """explain's "predicted X (P%)" is predict's answer for the same face (ten-crop by default), and
    the map explains that class; ``--tta none`` gives the centre view's."""
    from ferkit.vision.recognizer import EmotionRecognizer

    faces, _ = real_faces(per_class=1)
    views = {tta: EmotionRecognizer(model="fast", tta=tta, detector="none", backend="torch") for tta in ("auto", "none")}
    told_apart = 0
    for i, face in enumerate(faces):
        path = tmp_path / f"face{i}.png"
        cv2.imwrite(str(path), face)
        expected = {}
        for tta, recognizer in views.items():
            found = recognizer.predict(str(path))[0]
            expected[tta] = f"predicted {found.emotion} ({found.scores[found.emotion]:.0%}); explaining {found.emotion}"
            extra = [] if tta == "auto" else ["--tta", "none"]
            code = main(["explain", str(path), "--model", "fast", "--out", str(tmp_path / "map.png"), *extra])
            stdout, err = capsys.readouterr()
            assert code == 0, err
            assert expected[tta] in stdout, (tta, stdout)
        told_apart += expected["auto"] != expected["none"]
    assert told_apart, "no face whose ten-crop answer differs from its centre view's: the test shows nothing"


def test_explain_cli_bigger_photo_without_detector(tmp_path, tiny_model_file, capsys):
    out = tmp_path / "big.png"
    code = main(["explain", str(_face_png(tmp_path, 120)), "--detector", "none", "--model", str(tiny_model_file),
                 "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "the whole 120x130 image as the face" in stdout  # as predict --no-detect reads it
    _assert_png(out)
    # The whole picture is face 0 and the only one.
    code = main(["explain", str(_face_png(tmp_path, 120)), "--detector", "none", "--model", str(tiny_model_file),
                 "--face", "1", "--out", str(tmp_path / "other.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--face 1: the picture is one face" in err, err


def test_explain_cli_bad_input(tmp_path, tiny_model_file, capsys):
    face = str(_face_png(tmp_path))
    cases = [
        (["--class", "bored"], "bored"),
        (["--layer", "features.99"], "features.99"),
        (["--method", "guided-backprop", "--layer", "features.0", "--class", "sad"], "drop --class"),
        (["--model", f"{tiny_model_file}+{tiny_model_file}"], "one model, not an ensemble"),
        (["--out", str(tmp_path / "x.gif")], "x.gif: cannot write a .gif picture"),
        (["--detector", "none", "--detect-size", "320"], "--detect-size acts only with a face detector"),
    ]
    for extra, message in cases:
        code = main(["explain", face, "--model", str(tiny_model_file), "--out", str(tmp_path / "x.png"), *extra])
        _, err = capsys.readouterr()
        assert code == 2 and message in err and err.count("\n") == 1, err
    code = main(["explain", face, "--model", str(tiny_model_file), "--method", "guided-backprop", "--layer",
                 "features.0", "--out", str(tmp_path / "layer.png")])
    stdout, err = capsys.readouterr()
    assert code == 0 and re.search(r"explaining filter \d+ of layer features.0, where it is strongest", stdout), err
    # A name that is a word of the message ("no", "image") is still said (it once was not).
    for name in ("no", "image"):
        code = main(["explain", str(tmp_path / name), "--model", str(tiny_model_file), "--out", str(tmp_path / "x.png")])
        _, err = capsys.readouterr()
        assert code == 2 and f"{tmp_path / name}: no such file" in err, err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    code = main(["explain", str(broken), "--model", str(tiny_model_file), "--out", str(tmp_path / "x.png")])
    _, err = capsys.readouterr()
    assert code == 2 and "broken.png" in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_visualize_filters_cli(tmp_path, tiny_model_file, fer_root, capsys):
    out = tmp_path / "filters.png"
    code = main(["visualize-filters", "--model", str(tiny_model_file), "--filters", "4", "--steps", "5",
                 "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "features.8" in stdout and "weight norm" in stdout
    _assert_png(out)
    code = main(["visualize-filters", "--model", str(tiny_model_file), "--layer", "features.4", "--filters", "4",
                 "--steps", "5", "--data", str(fer_root), "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert stdout.startswith("features.4:") and "mean activation on 14 publictest faces" in stdout
    _assert_png(out)
    # The suffix chooses the format: a .pdf is a PDF, not PNG bytes under that name.
    code = main(["visualize-filters", "--model", str(tiny_model_file), "--filters", "2", "--steps", "2",
                 "--out", str(tmp_path / "filters.pdf")])
    assert code == 0 and (tmp_path / "filters.pdf").read_bytes()[:5] == b"%PDF-"
    # A layer with no feature maps is named as such at once, not sent off to find --data first.
    for extra in ([], ["--data", str(fer_root)]):
        code = main(["visualize-filters", "--model", str(tiny_model_file), "--layer", "classifier", "--out",
                     str(tmp_path / "c.png"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and "layer 'classifier' does not produce N x C x H x W feature maps" in err, err
    # Options that choose the ranking faces do nothing without --data: refused, not ignored.
    code = main(["visualize-filters", "--model", str(tiny_model_file), "--split", "training", "--out",
                 str(tmp_path / "s.png")])
    assert code == 2 and "--split acts only with --rank data" in capsys.readouterr().err
    code = main(["visualize-filters", "--model", str(tiny_model_file), "--rank", "reached", "--filters", "2",
                 "--steps", "3", "--out", str(tmp_path / "r.png")])
    stdout, err = capsys.readouterr()
    assert code == 0 and "2 strongest filters by the activation their images reach" in stdout, err
    _assert_png(tmp_path / "r.png")
    for extra, message in ((["--rank", "data"], "--rank data ranks filters on faces: give --data"),
                           (["--rank", "weights", "--data", str(fer_root)], "--data acts only with --rank data")):
        code = main(["visualize-filters", "--model", str(tiny_model_file), "--out", str(tmp_path / "x.png"), *extra])
        assert code == 2 and message in capsys.readouterr().err


def test_filters_of_a_transfer_backbone_are_visualised_on_gray_inputs():
    """An ImageNet backbone's first convolution takes 3 channels, but ferkit feeds it gray faces
    (repeated by its input adapter): the optimised images are those gray faces."""
    from ferkit.explain.layers import input_channels
    from ferkit.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet18").eval()
    assert input_channels(model) == 1
    images, reached = maximize_filters(model, [0, 1], "layer1.0.conv1", steps=2)
    assert images.shape == (2, 48, 48) and np.isfinite(reached).all()


def test_explain_cli_picks_a_face_as_predict_numbers_them(tmp_path, tiny_model_file, capsys):
    """--face N explains the face predict lists as face N (left to right); one past the last is a
    one-line error saying how many there are."""
    import json

    from test_vision import compose

    canvas, _ = compose(2)
    photo = tmp_path / "two.jpg"
    cv2.imwrite(str(photo), canvas)
    common = ["--model", str(tiny_model_file), "--detector", "haar"]
    assert main(["predict", str(photo), *common, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["face"] for r in rows] == [0, 1]
    for row in rows:
        code = main(["explain", str(photo), *common, "--face", str(row["face"]), "--out", str(tmp_path / "f.png")])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"face {row['face']} of 2 (left to right): ({row['x']}, {row['y']}, {row['w']}, {row['h']})" in out
        assert f"predicted {row['emotion']} ({row['confidence']:.0%})" in out
    assert main(["explain", str(photo), *common, "--face", "2", "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert "--face 2: 2 face(s) found" in err and err.count("\n") == 1
    # predict's detection options count the faces the same way: none as large as the picture.
    larger = ["--min-face", str(max(canvas.shape[:2]))]
    assert main(["predict", str(photo), *common, *larger, "--json"]) == 0
    assert [row["face"] for row in json.loads(capsys.readouterr().out)] == [None]  # the photo, with no face
    assert main(["explain", str(photo), *common, *larger, "--face", "0", "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert "--face 0: no face found" in err and err.count("\n") == 1
    assert main(["explain", str(photo), *common, "--min-face", "0", "--out", str(tmp_path / "f.png")]) == 2
    assert "--min-face 0: must be at least 1 pixel" in capsys.readouterr().err
