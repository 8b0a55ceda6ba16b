"""Post-hoc corrections of a trained model, each chosen on one half of PublicTest and scored on the other.

    python benchmarks/local_learning.py [--model default] [--data ../shared/fer2013] [--threads 2]

Two ideas that need no training, so they cost minutes where a run costs hours:

- **local learning** (Georgescu, Ionescu & Popescu, "Local Learning with Deep and Handcrafted Features
  for Facial Expression Recognition", 2019): the labels of a face's nearest training faces in the
  network's penultimate features (cosine similarity, k neighbours weighted by exp(similarity / tau)),
  blended with the network's ten-crop probabilities (weight lambda);
- **class biases**: seven additive log-probability offsets, found by coordinate ascent on accuracy,
  which move the decision between classes the imbalanced training set skews.

Training faces are described by the mean of their two flip views, PublicTest faces by the mean of
their ten crops (as ``ferkit evaluate`` scores them).  The settings are chosen on the even faces of
PublicTest and scored on the odd ones, and the other way round: a setting that only fits the faces it
was chosen on shows up as a gain on its own half and none on the other.  Pause any training first.
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from ferkit.data.augment import tta_views
from ferkit.models.hub import load_model
from ferkit.training.losses import PenultimateFeatures

from common import parse_with_fer2013

NEIGHBOURS = (10, 25, 50, 100, 200)
TAUS = (0.02, 0.05, 0.1, float("inf"))
LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


def features_and_probs(spec: str, faces: np.ndarray, tta: str) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length penultimate features and calibrated probabilities, each averaged over the views."""
    loaded = load_model(spec)
    model, normalizer = loaded.model.eval(), loaded.normalizer
    hook = PenultimateFeatures(model)
    features, probs = [], []
    with torch.inference_mode():
        for start in range(0, len(faces), 256):
            chunk = np.ascontiguousarray(normalizer.prepare(faces[start:start + 256]))
            views = tta_views(normalizer(torch.from_numpy(chunk).unsqueeze(1)), loaded.input_size, tta)
            flat = views.reshape(-1, *views.shape[2:]).contiguous(memory_format=torch.channels_last)
            logits = model(flat).float().view(*views.shape[:2], -1)
            probs.append(torch.softmax(logits / loaded.temperature, -1).mean(0).numpy())
            features.append(hook.value.float().view(*views.shape[:2], -1).mean(0).numpy())
    hook.remove()
    feats = np.concatenate(features)
    return feats / np.linalg.norm(feats, axis=1, keepdims=True), np.concatenate(probs)


def knn_probs(similar: np.ndarray, neighbour_labels: np.ndarray, k: int, tau: float) -> np.ndarray:
    """Class distribution of the k most similar training faces, weighted by exp(similarity / tau)."""
    weights = np.exp((similar[:, :k] - similar[:, :1]) / tau)
    votes = np.zeros((len(similar), 7))
    np.add.at(votes, (np.arange(len(similar))[:, None], neighbour_labels[:, :k]), weights)
    return votes / votes.sum(1, keepdims=True)


def fit_biases(log_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    biases = np.zeros(log_probs.shape[1])
    for _sweep, c in itertools.product(range(4), range(len(biases))):
        scores = []
        for value in np.linspace(-1, 1, 41):
            trial = biases.copy()
            trial[c] = value
            scores.append((((log_probs + trial).argmax(1) == labels).mean(), -abs(value), value))
        biases[c] = max(scores)[2]  # ties go to the smaller offset
    return biases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    args, data = parse_with_fer2013(parser)
    train, test = data["training"], data["publictest"]
    train_feats, _ = features_and_probs(args.model, train.images, "flip")
    test_feats, probs = features_and_probs(args.model, test.images, "tencrop")
    labels = test.labels
    similarity = test_feats @ train_feats.T
    nearest = np.argsort(-similarity, axis=1)[:, :max(NEIGHBOURS)]
    similar, neighbour_labels = np.take_along_axis(similarity, nearest, 1), train.labels[nearest]

    right = {}  # setting -> per-face correctness on all of PublicTest
    for k, tau in itertools.product(NEIGHBOURS, TAUS):
        knn = knn_probs(similar, neighbour_labels, k, tau)
        for lam in LAMBDAS:
            right[(k, tau, lam)] = ((1 - lam) * probs + lam * knn).argmax(1) == labels
    network = probs.argmax(1) == labels
    halves = [np.arange(len(labels)) % 2 == i for i in (0, 1)]
    print(f"{args.model}, PublicTest ({len(labels):,} faces), ten-crop: {network.mean():.4f}")
    for name, other in (("even", halves[1]), ("odd", halves[0])):
        chosen = halves[0] if name == "even" else halves[1]
        k, tau, lam = max(right, key=lambda s: right[s][chosen].mean())
        print(f"local learning chosen on the {name} faces: k={k} tau={tau} lambda={lam}: "
              f"{right[(k, tau, lam)][chosen].mean():.4f} there (network {network[chosen].mean():.4f}), on the "
              f"others {right[(k, tau, lam)][other].mean():.4f} (network {network[other].mean():.4f})")
        biases = fit_biases(np.log(probs[chosen]), labels[chosen])
        corrected = (np.log(probs) + biases).argmax(1) == labels
        print(f"class biases chosen on the {name} faces {np.round(biases, 2).tolist()}: "
              f"{corrected[chosen].mean():.4f} there (network {network[chosen].mean():.4f}), on the others "
              f"{corrected[other].mean():.4f} (network {network[other].mean():.4f})")


if __name__ == "__main__":
    main()
