"""The model zoo: every registered architecture trains, matches its paper's size, loads pretrained
weights from local files and freezes block by block."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ferkit.app.cli import main as cli_main
from ferkit.data.preprocess import Normalizer
from ferkit.models import count_parameters, create_model, model_info, model_names
from ferkit.models.adapter import InputAdapter
from ferkit.models.io import ModelFileError, load_model_file, load_pretrained, save_model_file
from ferkit.models.superres import ESPCN
from ferkit.training.loop import model_blocks, set_frozen

TRANSFER = ["resnet18", "resnet50", "vgg11", "vgg16", "vgg19", "efficientnet_b1"]


@pytest.fixture(autouse=True)
def _one_thread():
    # The big models run at batch 2 only; one thread keeps the suite from fighting other jobs.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def meta_model(name: str, **options) -> torch.nn.Module:
    """Shapes and names without allocating weights (the VGGs hold 130M parameters)."""
    with torch.device("meta"):
        return create_model(name, **options)


@pytest.mark.parametrize("name", model_names())
def test_every_model_runs_forward_and_backward_through_all_its_parameters(name):
    torch.manual_seed(0)
    model = create_model(name, **model_info(name).example_options)
    size = model.input_size
    assert size == model_info(name).input_size
    x = torch.randn(2, 1, size, size)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 3])).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: parameters outside the graph: {missing[:5]}"


@pytest.mark.parametrize("name", [n for n in model_names() if model_info(n).paper_params])
def test_parameter_count_matches_the_paper(name):
    ours, paper = count_parameters(meta_model(name)), model_info(name).paper_params
    assert abs(ours - paper) / paper <= 0.10, f"{name}: {ours:,} parameters vs {paper:,} in the paper"


# torchvision's published counts for its ImageNet (1000-class) models: same layout => same count.
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "vgg11": 132_863_336,
                      "vgg16": 138_357_544, "vgg19": 143_667_240, "efficientnet_b1": 7_794_184}
TORCHVISION_KEYS = {"resnet18": ["conv1.weight", "layer4.1.bn2.running_var", "fc.weight"],
                    "resnet50": ["layer1.0.downsample.0.weight", "layer4.2.conv3.weight", "fc.bias"],
                    "vgg11": ["features.0.weight", "features.18.bias", "classifier.6.weight"],
                    "vgg16": ["features.28.weight", "classifier.0.weight", "classifier.6.bias"],
                    "vgg19": ["features.34.weight", "classifier.0.weight", "classifier.6.bias"],
                    "efficientnet_b1": ["features.0.0.weight", "features.2.1.block.2.fc1.weight",
                                        "features.8.1.running_mean", "classifier.1.weight"]}


@pytest.mark.parametrize("name", TRANSFER)
def test_imagenet_layouts_follow_torchvision(name):
    model = meta_model(name, num_classes=1000)
    assert count_parameters(model) == TORCHVISION_PARAMS[name]
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert set(TORCHVISION_KEYS[name]) <= set(shapes)
    # Exactly the head changes with the number of classes, and load_pretrained is told so.
    ours = {k: v.shape for k, v in meta_model(name).state_dict().items()}
    assert ours.keys() == shapes.keys()
    changed = {k for k in ours if ours[k] != shapes[k]}
    assert changed and all(k.startswith(model.head_prefixes) for k in changed)


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet51'") as info:
        create_model("resnet51")
    for name in ("resnet50", "sepconv", "efficientnet_b1", "shallow"):
        assert name in str(info.value)


def test_flatten_models_follow_the_input_size():
    for name in ("shallow", "medium", "deep", "cnn5"):
        model = create_model(name, input_size=44).eval()
        assert model.input_size == 44
        assert model(torch.randn(1, 1, 44, 44)).shape == (1, 7)
    # The FC layer is sized for the input: fewer inputs at 44 px than at 48 px.
    assert count_parameters(create_model("shallow", input_size=44)) < count_parameters(create_model("shallow"))


def test_input_adapter_upscales_and_repeats_channels():
    x = torch.randn(2, 1, 12, 12)
    assert InputAdapter()(x).shape == (2, 3, 12, 12)
    assert InputAdapter("none")(x).shape == (2, 3, 12, 12)
    assert InputAdapter("bilinear")(x).shape == (2, 3, 24, 24)
    assert InputAdapter("bilinear", size=30)(x).shape == (2, 3, 30, 30)
    out = InputAdapter("espcn")(x)
    assert out.shape == (2, 3, 24, 24) and torch.equal(out[:, 0], out[:, 2])
    with pytest.raises(ValueError, match="unknown upscale 'bicubic'"):
        InputAdapter("bicubic")
    with pytest.raises(ValueError, match="fixed 2x"):
        InputAdapter("espcn", size=224)


def test_espcn_starts_as_bilinear_and_learns():
    torch.manual_seed(0)
    sr = ESPCN()
    x = torch.randn(3, 1, 10, 10)
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(sr(x), bilinear)
    target = torch.randn(3, 1, 20, 20)
    opt = torch.optim.Adam(sr.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = F.mse_loss(sr(x), target)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.9


def test_resnet_with_espcn_trains_the_super_resolution_module():
    model = create_model("resnet18", upscale="espcn")
    assert "input_adapter." in model.head_prefixes  # ImageNet files lack these weights
    F.cross_entropy(model(torch.randn(2, 1, 48, 48)), torch.tensor([1, 2])).backward()
    grad = model.input_adapter.sr.body[-1].weight.grad
    assert grad is not None and grad.abs().sum() > 0


# --- pretrained weights from local files -------------------------------------------------------

@pytest.fixture(scope="module")
def imagenet_resnet18(tmp_path_factory):
    """A random 1000-class ResNet-18 written as safetensors and as a ``torch.save``d state dict."""
    torch.manual_seed(1)
    state = {k: v.clone() for k, v in create_model("resnet18", num_classes=1000).state_dict().items()}
    folder = tmp_path_factory.mktemp("weights")
    save_file(state, str(folder / "resnet18.safetensors"))
    torch.save(state, folder / "resnet18.pth")
    return state, folder


@pytest.mark.parametrize("filename", ["resnet18.safetensors", "resnet18.pth"])
def test_load_pretrained_replaces_the_imagenet_head(imagenet_resnet18, filename):
    state, folder = imagenet_resnet18
    torch.manual_seed(2)
    model = create_model("resnet18")
    head_before = model.fc.weight.detach().clone()
    left = load_pretrained(model, folder / filename, head_prefixes=model.head_prefixes)
    assert sorted(left) == ["fc.bias", "fc.weight"]
    loaded = model.state_dict()
    assert torch.equal(loaded["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    assert torch.equal(loaded["bn1.running_mean"], state["bn1.running_mean"])
    assert loaded["fc.weight"].shape == (7, 512) and torch.equal(loaded["fc.weight"], head_before)


def test_load_pretrained_names_missing_and_mismatched_keys(imagenet_resnet18, tmp_path):
    state, _ = imagenet_resnet18
    missing = {k: v for k, v in state.items() if k != "layer2.0.conv1.weight"}
    save_file(missing, str(tmp_path / "missing.safetensors"))
    model = create_model("resnet18")
    with pytest.raises(ModelFileError, match=r"missing\.safetensors.*missing keys: layer2\.0\.conv1\.weight"):
        load_pretrained(model, tmp_path / "missing.safetensors", head_prefixes=model.head_prefixes)

    wrong = dict(state, **{"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)})
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(ModelFileError, match=r"wrong\.pt.*shape mismatch: layer1\.0\.conv1\.weight"):
        load_pretrained(model, tmp_path / "wrong.pt", head_prefixes=model.head_prefixes)

    # The weights of another architecture: every backbone key is unexpected or missing.
    save_file(create_model("efficientnet_b1").state_dict(), str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelFileError, match=r"missing keys: conv1\.weight.*unexpected keys: features\."):
        load_pretrained(model, tmp_path / "other.safetensors", head_prefixes=model.head_prefixes)


@pytest.mark.parametrize("filename", ["corrupt.safetensors", "corrupt.pth"])
def test_load_pretrained_rejects_a_corrupt_file(tmp_path, filename):
    path = tmp_path / filename
    path.write_bytes(b"\x00\x01not weights at all" * 10)
    with pytest.raises(ModelFileError, match=rf"{filename}: unreadable weights file"):
        load_pretrained(create_model("resnet18"), path, head_prefixes=("fc.",))
    with pytest.raises(ModelFileError, match="no such weights file"):
        load_pretrained(create_model("tiny"), tmp_path / "absent.safetensors")


def test_zoo_model_file_keeps_its_options(tmp_path):
    model = create_model("sepconv", dropout=0.3).eval()
    faces = np.random.default_rng(0).integers(0, 256, size=(16, 48, 48), dtype=np.uint8)
    save_model_file(tmp_path / "m.safetensors", model, name="sepconv", options={"dropout": 0.3},
                    normalizer=Normalizer.fit(faces))
    loaded = load_model_file(tmp_path / "m.safetensors")
    assert loaded.input_size == 44 and loaded.model.dropout.p == 0.3
    x = torch.randn(2, 1, 44, 44)
    assert torch.allclose(loaded.model(x), model(x))


# --- freezing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TRANSFER + ["sepconv"])
def test_blocks_partition_the_parameters(name):
    model = meta_model(name, upscale="espcn") if name != "sepconv" else meta_model(name)
    blocks = model.blocks()
    seen: dict[int, int] = {}
    for i, block in enumerate(blocks):
        for p in block.parameters():
            assert id(p) not in seen, f"{name}: a parameter is in blocks {seen[id(p)]} and {i}"
            seen[id(p)] = i
    outside = [n for n, p in model.named_parameters() if id(p) not in seen]
    # Only the (new, never pretrained) super-resolution module stays out of the blocks.
    assert all(n.startswith("input_adapter.sr.") for n in outside)
    # The head is the last block, so --freeze len-1 trains the classifier alone.
    head = {n for n, _ in model.named_parameters() if any(n.startswith(p) for p in model.head_prefixes)}
    head -= {n for n in head if n.startswith("input_adapter.")}
    last = {id(p) for p in blocks[-1].parameters()}
    assert head and all(id(dict(model.named_parameters())[n]) in last for n in head)


@pytest.mark.parametrize("name, count", [("resnet50", 3), ("efficientnet_b1", 4), ("vgg16", 5), ("sepconv", 2)])
def test_freezing_the_first_blocks(name, count):
    model = meta_model(name)
    blocks = model_blocks(model)  # what ``--freeze N`` does in the training loop
    set_frozen(blocks[:count], frozen=True)
    for i, block in enumerate(blocks):
        flags = {p.requires_grad for p in block.parameters()}
        assert flags == ({False} if i < count else {True}), f"{name}: block {i} requires_grad {flags}"
    set_frozen(blocks[:count], frozen=False)
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_blocks_get_no_gradient():
    model = create_model("resnet18")
    set_frozen(model_blocks(model)[:2], frozen=True)
    F.cross_entropy(model(torch.randn(2, 1, 48, 48)), torch.tensor([0, 1])).backward()
    assert model.conv1.weight.grad is None and model.layer1[0].conv1.weight.grad is None
    assert model.layer2[0].conv1.weight.grad is not None and model.fc.weight.grad is not None


# --- the CLI listing ----------------------------------------------------------------------------

def test_ferkit_models_lists_every_model(capsys):
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    assert listed == set(model_names())
    assert "seed 001: Face Expression Recognition" in out
    assert cli_main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["sepconv"]["paper_params"] == 2_720_439
    assert rows["sepconv"]["params"] == count_parameters(create_model("sepconv"))


@pytest.mark.parametrize("damage", ["no name", "header not an object", "no normaliser", "bad options",
                                    "input size the net cannot take", "input size not a number",
                                    "temperature not a number", "meta not an object"])
def test_a_model_file_with_a_damaged_header_is_a_model_file_error(tmp_path, damage):
    """Hand-edited or foreign safetensors files fail with one message naming the file."""
    import json as json_module

    from safetensors.torch import save as st_save

    from ferkit.models.io import FORMAT

    model = create_model("tiny", width=8)
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    if damage != "no normaliser":
        tensors.update({f"normalizer.{k}": v for k, v in Normalizer.identity().state_dict().items()})
    header = {"format": FORMAT, "name": "tiny", "options": {"width": 8}}
    if damage == "no name":
        del header["name"]
    if damage == "bad options":
        header["options"] = ["width", 8]
    # These once loaded, then failed on every face (or without the file's name).
    header.update({"input size the net cannot take": {"input_size": 1000}, "input size not a number": {"input_size": "big"},
                   "temperature not a number": {"temperature": "hot"}, "meta not an object": {"meta": [1]}}.get(damage, {}))
    text = json_module.dumps([1, 2]) if damage == "header not an object" else json_module.dumps(header)
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(st_save(tensors, metadata={"ferkit": text}))
    with pytest.raises(ModelFileError, match="damaged.safetensors"):
        load_model_file(path)


def test_a_training_checkpoint_given_as_a_model_points_to_the_model(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"PK")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelFileError, match=r"last.pt: a training checkpoint, not a model file; give the run folder"):
        load_model_file(tmp_path / "last.pt")
    # Other pickles and ONNX graphs are named for what they are (they were "a training checkpoint" or
    # "not a ferkit model file (... header too large)"); none is unpickled.
    (tmp_path / "other").mkdir()
    for name, words in (("weights.pth", "a PyTorch pickle"), ("model.pt", "a PyTorch pickle"),
                        ("graph.onnx", "an ONNX graph")):
        (tmp_path / "other" / name).write_bytes(b"\x08\x07\x12\x07pytorch")
        with pytest.raises(ModelFileError, match=words):
            load_model_file(tmp_path / "other" / name)


def test_a_safetensors_file_of_another_program_is_said_to_be_one(tmp_path):
    from safetensors.torch import save as st_save

    path = tmp_path / "other.safetensors"
    path.write_bytes(st_save({"w": torch.zeros(2)}, metadata={"framework": "pt"}))
    with pytest.raises(ModelFileError, match=r"other.safetensors: a safetensors file, but not a ferkit model \(it "
                                             r"has no ferkit header; ferkit train writes model files\)$"):
        load_model_file(path)


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_compact_weight_storage_loads_as_float32_and_predicts_like_the_original(tmp_path, storage):
    """int8 storage keeps one float32 scale per output channel: a quarter of the float32 size for
    convolution and linear weights, and the same answers within rounding."""
    from ferkit.models.inference import predict_probs
    from ferkit.models.io import stored_as

    torch.manual_seed(0)
    model = create_model("vgg_fer_fast").eval()
    faces = np.random.default_rng(1).integers(0, 256, size=(32, 48, 48), dtype=np.uint8)
    normalizer = Normalizer.fit(faces)
    full, compact = tmp_path / "full.safetensors", tmp_path / f"{storage}.safetensors"
    save_model_file(full, model, name="vgg_fer_fast", options={}, normalizer=normalizer)
    save_model_file(compact, model, name="vgg_fer_fast", options={}, normalizer=normalizer, storage=storage)
    assert stored_as(full) == "float32" and stored_as(compact) == storage
    ratio = compact.stat().st_size / full.stat().st_size
    assert ratio < (0.55 if storage == "float16" else 0.3), ratio
    loaded = load_model_file(compact)
    for key, value in loaded.model.state_dict().items():
        assert value.dtype == model.state_dict()[key].dtype, key
        if value.is_floating_point():
            reference = model.state_dict()[key]
            step = reference.abs().max() / (127 if storage == "int8" else 1000)
            assert (value - reference).abs().max() <= step + 1e-6, key
    expected = predict_probs(model, normalizer, faces)
    got = predict_probs(loaded.model, loaded.normalizer, faces)
    assert np.abs(got - expected).max() < 0.02
    with pytest.raises(ValueError, match="int4"):
        save_model_file(tmp_path / "x.safetensors", model, name="vgg_fer_fast", options={}, normalizer=normalizer,
                        storage="int4")


def test_batch_norm_recalibration_takes_the_statistics_of_the_given_faces():
    from ferkit.models.batch_norm import recalibrate_batch_norm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.3), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.LazyLinear(7))
    model.input_size = 44
    model(torch.zeros(2, 1, 44, 44))
    model.eval()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    rng = np.random.default_rng(0)
    faces = rng.integers(100, 200, size=(300, 48, 48), dtype=np.uint8)  # brighter than the default statistics
    normalizer = Normalizer(torch.full((1, 1), 0.3), torch.full((1, 1), 0.2))

    assert recalibrate_batch_norm(model, normalizer, faces, views="flip", batch_size=64) == 1

    # What the layer must now hold: the mean over batches of each batch's statistics of the conv's
    # outputs on the centre crops and their mirrors (running_var is the unbiased batch variance).
    x = normalizer(torch.from_numpy(faces).unsqueeze(1))[:, :, 2:46, 2:46]
    means, variances = [], []
    with torch.no_grad():
        for start in range(0, 300, 64):
            crop = x[start:start + 64]
            out = model[0](torch.cat([crop, crop.flip(-1)]))
            means.append(out.mean((0, 2, 3)))
            variances.append(out.transpose(0, 1).flatten(1).var(1, unbiased=True))
    bn = model[1]
    torch.testing.assert_close(bn.running_mean, torch.stack(means).mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, torch.stack(variances).mean(0), rtol=1e-4, atol=1e-5)
    assert not model.training and bn.momentum == 0.3
    for key, value in model.state_dict().items():
        if key in weights:
            assert torch.equal(value, weights[key]), key


def test_a_header_input_size_the_network_cannot_take_fails_at_load(tmp_path):
    """Such a file once loaded, then failed on every face with a shape error and no file name."""
    model = create_model("vgg_fer_fast")
    path = tmp_path / "wrong_size.safetensors"
    model.input_size = 20  # its classifier wants the feature map of a 44-pixel face
    save_model_file(path, model, name="vgg_fer_fast", options={}, normalizer=Normalizer.identity())
    with pytest.raises(ModelFileError, match="wrong_size.safetensors: the network cannot take 20x20 faces"):
        load_model_file(path)


def test_the_medium_nets_pooling_pads_as_keras_same_does():
    """3x3/2 pooling of an even input: Keras pads one pixel after, none before (MaxPool2d(padding=1) pads both)."""
    from ferkit.models.jahromi import SamePaddedMaxPool

    x = torch.randn(2, 3, 24, 24)
    by_hand = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2)
    assert torch.equal(SamePaddedMaxPool(3, 2)(x), by_hand) and by_hand.shape[-1] == 12
    assert SamePaddedMaxPool(3, 2)(torch.randn(1, 1, 11, 11)).shape[-1] == 6  # ceil(11 / 2), padded 1 + 1
    assert not torch.equal(torch.nn.MaxPool2d(3, 2, padding=1)(x), by_hand)


@pytest.mark.parametrize("change,words", [
    ({"classes": [str(i) for i in range(6)] + ["0"]}, "distinct names"),
    ({"normalizer": Normalizer(torch.zeros(3, 3), torch.ones(1, 1))}, "mean of shape (3, 3)"),
    ({"normalizer": Normalizer(torch.zeros(1, 1), torch.zeros(1, 1))}, "all above 0"),
    ({"normalizer": Normalizer(torch.full((1, 1), float("nan")), torch.ones(1, 1))}, "one finite number"),
])
def test_a_model_file_with_a_bad_header_is_named_at_load(tmp_path, change, words):
    """Classes that were no names crashed predict in a join; a 3x3 mean or a zero std crashed export or
    gave NaN probabilities, each blamed on something else."""
    values = dict(name="tiny", options={}, normalizer=Normalizer.identity())
    values.update(change)
    path = tmp_path / "bad.safetensors"
    save_model_file(path, create_model("tiny"), **values)
    with pytest.raises(ModelFileError, match=re.escape(words)):
        load_model_file(path)


def test_a_model_file_with_nan_weights_is_refused_at_load(tmp_path):
    """A diverged run's weights answered NaN everywhere: explain said "alpha must be between 0 and 1", export
    "differ by nan", predict gave an error row per source."""
    model = create_model("tiny")
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    path = tmp_path / "diverged.safetensors"
    save_model_file(path, model, name="tiny", options={}, normalizer=Normalizer.identity())
    with pytest.raises(ModelFileError, match=r"diverged.safetensors: the weights are not finite numbers \(.* holds NaN"):
        load_model_file(path)


def test_a_header_asking_for_a_bigger_network_than_its_weights_is_refused_before_building_it(tmp_path, monkeypatch):
    """The options in a header built the network before its weights were compared: a 1 KB edit (fc 8000)
    could allocate gigabytes.  The shapes are now compared on the meta device first."""
    import ferkit.models.io as io

    path = tmp_path / "edited.safetensors"
    save_model_file(path, create_model("tiny"), name="tiny", options={"width": 512}, normalizer=Normalizer.identity())
    built = []
    real_create = io.create_model
    monkeypatch.setattr(io, "create_model", lambda *a, **k: built.append(torch.get_default_device()) or real_create(*a, **k))
    with pytest.raises(ModelFileError, match=r"weights do not fit tiny with options \{'width': 512\} \(shape mismatch"):
        load_model_file(path)
    assert built and all(device.type == "meta" for device in built)  # never built for real


def test_an_error_without_a_message_is_still_a_one_line_model_file_error(tmp_path, monkeypatch):
    """`str(exc).splitlines()[0]` of an exception with no message raised IndexError instead."""
    from ferkit.models.io import ModelFileError, load_state_dict_file

    path = tmp_path / "weights.pt"
    path.write_bytes(b"anything")

    def fails(*args, **kwargs):
        raise RuntimeError()

    monkeypatch.setattr(torch, "load", fails)
    with pytest.raises(ModelFileError, match=r"weights.pt: unreadable weights file \(RuntimeError\)"):
        load_state_dict_file(path)


def test_every_module_that_registers_an_architecture_is_imported_by_the_zoo():
    """Architectures register on import: a new module left out of models/__init__.py would be missing
    from create_model and `ferkit models` without a word."""
    import ast
    from pathlib import Path

    import ferkit.models as zoo

    folder = Path(zoo.__file__).parent
    registering = {path.stem for path in folder.glob("*.py") if path.stem not in ("__init__", "registry")
                   and "@register_model" in path.read_text()}
    imported = {alias.name for node in ast.parse((folder / "__init__.py").read_text()).body
                if isinstance(node, ast.ImportFrom) and node.module is None for alias in node.names}
    assert registering and registering <= imported, registering - imported


def test_a_folder_that_is_no_run_is_named_as_such(tmp_path):
    """A dataset folder given as --model was "a run directory with no best.safetensors yet"."""
    from ferkit.models.hub import load_model

    (tmp_path / "ds" / "train").mkdir(parents=True)
    with pytest.raises(ModelFileError, match="a folder that is no training run"):
        load_model(str(tmp_path / "ds"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(ModelFileError, match="run directory has no best.safetensors yet"):
        load_model(str(tmp_path / "run"))
