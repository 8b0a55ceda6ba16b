"""Knowledge distillation (Hinton, Vinyals & Dean, 2015, "Distilling the Knowledge in a Neural
Network"): a small student learns from a teacher's class probabilities as well as from the labels.

Two ways to get the teacher's probabilities (``--distill-mode``):

* ``clean``: once, before training, on each clean training face (its centre view and mirror image,
  averaged).  Cheap, but the teacher has fitted its own training faces, so its targets there are
  close to the labels (it agrees with about 78% of them) and carry little beyond them.
* ``online``: on every augmented, mixed batch the student sees, so the target describes that very
  view (consistent teaching: Beyer et al., 2022, "Knowledge distillation: A good teacher is patient
  and consistent").  A crop that cuts off the mouth, or a mix of two faces, gets the teacher's
  actual uncertainty instead of a confident label.  It costs a teacher forward pass per image
  (about 38 s an epoch for ``vgg_fer`` with ONNX Runtime on this CPU).

The teacher may be an ensemble, ``--distill default+runs/b60``: its members' probabilities are
averaged, as ``ferkit evaluate --model default runs/b60`` averages them (seed 001 fuses two networks
this way), so the student learns from a teacher better than either member.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..data.classes import CLASSES
from ..data.preprocess import Normalizer
from ..models.hub import ensemble_members, load_model, model_path
from ..models.int8_graph import int8_path, load_int8_graph
from ..models.inference import predict_probs
from ..models.io import LoadedModel, ModelFileError


def teacher_probabilities(teacher: str, faces: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """N x C probabilities of the ``teacher`` (shipped name, run directory or model file; several
    joined by ``+`` are averaged) on N x 48 x 48 uint8 faces, softened by ``temperature`` on top
    of each teacher's calibrated one."""
    total = None
    names = ensemble_members(teacher)
    for name in names:
        loaded = _load_teacher(name)
        probs = predict_probs(loaded.model, loaded.normalizer, faces, tta="flip",
                              temperature=temperature * loaded.temperature).astype(np.float32)
        total = probs if total is None else total + probs
    return total / len(names)


def teacher_fingerprint(teacher: str, int8: bool = False) -> str:
    """A short hash of the teacher's model file(s): a resumed run can tell that its teacher changed
    (a shipped model updated with ferkit, a run directory trained further). With ``int8``, of their int8
    graphs too, which are what an int8 online teacher runs (a graph exported again with other
    calibration faces teaches differently)."""
    digest = hashlib.sha256()
    for name in ensemble_members(teacher):
        path = model_path(name)
        digest.update(path.read_bytes())
        graph = int8_path(path)
        if int8 and graph.is_file():
            digest.update(graph.read_bytes())
    return digest.hexdigest()[:16]


def _load_teacher(teacher: str) -> LoadedModel:
    loaded = load_model(teacher)
    if list(loaded.classes) != list(CLASSES):
        raise ModelFileError(f"{loaded.path}: the teacher's classes ({', '.join(loaded.classes)}) are not the "
                             f"seven FER2013 classes in their order")
    return loaded


class OnlineTeacher:
    """The teacher's probabilities on a batch of the student's (normalised, augmented) inputs; for
    an ensemble (``a+b``), the mean of its members' probabilities."""

    def __init__(self, teacher: str, student_normalizer: Normalizer, input_size: int,
                 temperature: float = 1.0, threads: int = 0, int8: bool = False):
        self.members = [_OnlineMember(name, student_normalizer, input_size, temperature, threads, int8)
                        for name in ensemble_members(teacher)]

    @property
    def engine(self) -> str:
        if all(m.session is not None for m in self.members):
            return "ONNX Runtime int8" if self.members[0].int8 else "ONNX Runtime"
        return "PyTorch"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)


class _OnlineMember:
    """One teacher model.  The student's input is mapped to the teacher's normalisation, which is
    exact when both are affine with one mean and std ("global"): augmentation then commutes with the
    mapping.  The forward pass runs in ONNX Runtime when it is installed, PyTorch otherwise; with
    ``int8``, in the teacher's int8 graph (``ferkit export --int8``), which ONNX Runtime needs.
    """

    def __init__(self, teacher: str, student_normalizer: Normalizer, input_size: int,
                 temperature: float = 1.0, threads: int = 0, int8: bool = False):
        loaded = _load_teacher(teacher)
        t, s = loaded.normalizer, student_normalizer
        name = loaded.path or teacher
        if t.mean.numel() != 1 or s.mean.numel() != 1:
            raise ModelFileError(f"{name}: online distillation needs global normalisation in teacher and student")
        if t.equalize != s.equalize:
            raise ModelFileError(f"{name}: the teacher {'does' if t.equalize else 'does not'} equalise histograms "
                                 f"and the student {'does' if s.equalize else 'does not'}")
        if loaded.input_size != input_size:
            raise ModelFileError(f"{name}: the teacher takes {loaded.input_size} px inputs, the student {input_size} px")
        # student x = (p - m_s) / s_s; the teacher wants (p - m_t) / s_t = x * s_s / s_t + (m_s - m_t) / s_t
        self.scale = float(s.std.item() / t.std.item())
        self.shift = float((s.mean.item() - t.mean.item()) / t.std.item())
        self.temperature = temperature * loaded.temperature
        self.session = None
        self.int8 = int8
        self.model = loaded.model.eval()
        graph = load_int8_graph(loaded) if int8 else None  # a missing or stale graph: one line, before training
        try:
            import onnxruntime as ort

            from ..models.onnx_export import export_onnx
        except ImportError:
            if int8:
                raise ModelFileError(f"{name}: --distill-int8 needs onnxruntime (pip install onnxruntime)") from None
            return
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # Idle ORT threads must not spin while PyTorch trains the student on the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph if int8 else export_onnx(loaded), options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.detach().float() * self.scale + self.shift).contiguous()
        if self.session is not None:
            logits = torch.from_numpy(self.session.run(None, {"faces": x.numpy()})[0])
        else:
            with torch.inference_mode():
                logits = self.model(x)
        return torch.softmax(logits.float() / self.temperature, dim=1)


def distilled_targets(targets: torch.Tensor, teacher: torch.Tensor, weight: float) -> torch.Tensor:
    """Each face's target distribution: ``(1 - weight)`` of its label, ``weight`` of the teacher's
    probabilities. Cross-entropy against it is ``(1 - weight)`` times the label loss plus ``weight``
    times the cross-entropy against the teacher (label smoothing, applied afterwards, takes its share
    of both)."""
    return (1.0 - weight) * targets + weight * teacher
