"""Keep each face's identity across video frames and smooth its probabilities over time.

A greedy IoU tracker (the "IOU tracker" of Bochinski et al., 2017, "High-Speed
Tracking-by-Detection Without Using Image Information"): a face in a new frame takes the id
of the live track whose last box overlaps it most (IoU at least ``iou_threshold``); a face left
over then takes the nearest track left over whose box is of a similar size (within 2x) and whose
centre is less than one box size away (a face moving fast, or seen only every few frames with
``--every`` / ``--detect-every``, overlaps its last box too little); other faces start new tracks;
tracks unseen for ``max_missed`` processed frames end.
Each track keeps an exponential moving average of its probabilities:
``p_smooth = smooth * p_smooth_previous + (1 - smooth) * p_now`` (``smooth=0`` turns it off).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _relative_distance(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float | None:
    """How far apart two boxes' centres are, in box sizes (their mean side); None when the boxes differ in
    size by more than 2x or lie a box size or more apart: then they are not one face."""
    size_a, size_b = np.sqrt(a[2] * a[3]), np.sqrt(b[2] * b[3])
    if min(size_a, size_b) <= 0 or max(size_a, size_b) > 2 * min(size_a, size_b):
        return None
    dx = (a[0] + a[2] / 2) - (b[0] + b[2] / 2)
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    distance = float(np.hypot(dx, dy)) / ((size_a + size_b) / 2)
    return distance if distance < 1.0 else None


@dataclass
class Track:
    id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray
    missed: int = 0


class IoUTracker:
    def __init__(self, smooth: float = 0.5, iou_threshold: float = 0.3, max_missed: int = 10):
        if not 0.0 <= smooth < 1.0:
            raise ValueError(f"smooth={smooth}: must be at least 0 and below 1")
        self.smooth, self.iou_threshold, self.max_missed = smooth, iou_threshold, max_missed
        self.tracks: list[Track] = []
        self._next_id = 0

    def update(self, boxes: list[tuple[int, int, int, int]], probs: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Assign track ids to this frame's boxes; return the ids and the smoothed probabilities."""
        pairs = sorted(((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
                       reverse=True)
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used_tracks or bi in assigned:
                continue
            assigned[bi] = ti
            used_tracks.add(ti)
        near = sorted((distance, ti, bi) for ti, t in enumerate(self.tracks) if ti not in used_tracks
                      for bi, b in enumerate(boxes) if bi not in assigned
                      if (distance := _relative_distance(t.box, b)) is not None)
        for distance, ti, bi in near:
            if ti in used_tracks or bi in assigned:
                continue
            assigned[bi] = ti
            used_tracks.add(ti)
        ids: list[int] = []
        smoothed = np.array(probs, dtype=np.float32, copy=True)
        for bi, box in enumerate(boxes):
            if bi in assigned:
                track = self.tracks[assigned[bi]]
                track.probs = self.smooth * track.probs + (1.0 - self.smooth) * smoothed[bi]
                track.box, track.missed = box, 0
            else:
                track = Track(self._next_id, box, smoothed[bi].copy())
                self._next_id += 1
                self.tracks.append(track)
                used_tracks.add(len(self.tracks) - 1)
            smoothed[bi] = track.probs
            ids.append(track.id)
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return ids, smoothed
