"""CDnet-format sequences on disk: discovery, frame/ground-truth pairing and streaming.

Layout (see the datasets README): ``input/inNNNNNN.jpg`` or ``in/frame_N.jpg`` frames,
``groundtruth/gtNNNNNN.png`` masks paired by the number N, ``temporalROI.txt`` ("first last", only
those frames are scored) and ``ROI.bmp`` (only its non-zero pixels are scored). Numbers are parsed,
never sorted as text, because some sets do not zero-pad them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "DiskSequence",
    "EvalFrame",
    "Sequence",
    "SequenceError",
    "discover",
    "load_sequence",
]

U8 = npt.NDArray[np.uint8]
_NUMBER = re.compile(r"(\d+)")
_FRAME_DIRS = ("input", "in")
_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp"}


class SequenceError(ValueError):
    """A folder is not a usable CDnet-format sequence."""


@dataclass(frozen=True, slots=True)
class EvalFrame:
    """One frame to feed the detectors.

    ``truth`` is the CDnet label mask when the frame is scored, else None (warm-up frames).
    ``still`` marks generated still-period frames, whose false alarms are counted separately.
    """

    number: int
    luma: U8
    truth: U8 | None
    still: bool = False


class Sequence(Protocol):
    """Anything the runner can evaluate."""

    @property
    def name(self) -> str:
        """Display name."""
        ...

    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape (h, w)."""
        ...

    @property
    def roi(self) -> npt.NDArray[np.bool_]:
        """Scored pixels (True) at frame shape."""
        ...

    @property
    def synthetic(self) -> bool:
        """True for generated sequences."""
        ...

    def __len__(self) -> int:
        """Number of frames :meth:`frames` yields with no limit."""
        ...

    def frames(self, max_scored: int | None = None) -> Iterator[EvalFrame]:
        """Yield frames in order; stop after ``max_scored`` scored frames when given."""
        ...


def _number(path: Path) -> int:
    found = _NUMBER.findall(path.stem)
    if not found:
        raise SequenceError(f"no frame number in file name {path.name}")
    return int(found[-1])


def _numbered(folder: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for p in folder.iterdir():
        if p.suffix.lower() in _IMAGE_EXT:
            out[_number(p)] = p
    return out


def read_luma(path: Path) -> U8:
    """Read an image file as 8-bit luma (BT.601, like a camera's Y plane)."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise SequenceError(f"cannot read image {path}")
    return cast(U8, img)


@dataclass(frozen=True)
class DiskSequence:
    """A CDnet-format sequence folder."""

    path: Path
    name: str
    shape: tuple[int, int]
    roi: npt.NDArray[np.bool_]
    inputs: dict[int, Path]
    truths: dict[int, Path]
    first: int
    last: int

    @property
    def synthetic(self) -> bool:
        """Always False: these are real recordings."""
        return False

    def numbers(self) -> list[int]:
        """Frame numbers in order, up to the end of the scored range."""
        return sorted(n for n in self.inputs if n <= self.last)

    def scored(self, number: int) -> bool:
        """Whether frame ``number`` is inside the temporal ROI and has ground truth."""
        return self.first <= number <= self.last and number in self.truths

    def __len__(self) -> int:
        return len(self.numbers())

    def frames(self, max_scored: int | None = None) -> Iterator[EvalFrame]:
        """Stream frames (decoded lazily) with their ground truth when scored."""
        done = 0
        for n in self.numbers():
            if max_scored is not None and done >= max_scored:
                return
            luma = read_luma(self.inputs[n])
            if luma.shape != self.shape:
                raise SequenceError(f"{self.inputs[n]}: shape {luma.shape} != {self.shape}")
            truth = None
            if self.scored(n):
                truth = read_luma(self.truths[n])
                if truth.shape != self.shape:
                    raise SequenceError(f"{self.truths[n]}: shape {truth.shape} != {self.shape}")
                done += 1
            yield EvalFrame(n, luma, truth)


def is_sequence(folder: Path) -> bool:
    """True if ``folder`` holds a frame folder and a ground-truth folder."""
    return (folder / "groundtruth").is_dir() and any((folder / d).is_dir() for d in _FRAME_DIRS)


def load_sequence(folder: Path, name: str | None = None) -> DiskSequence:
    """Index one sequence folder (frames are read later, while streaming)."""
    frame_dir = next((folder / d for d in _FRAME_DIRS if (folder / d).is_dir()), None)
    if frame_dir is None or not (folder / "groundtruth").is_dir():
        raise SequenceError(f"{folder}: needs input/ (or in/) and groundtruth/ folders")
    inputs = _numbered(frame_dir)
    truths = _numbered(folder / "groundtruth")
    if not inputs:
        raise SequenceError(f"{frame_dir}: no frames")
    roi_file = folder / "temporalROI.txt"
    if roi_file.is_file():
        parts = roi_file.read_text().split()
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise SequenceError(f"{roi_file}: expected 'first last' (two frame numbers)")
        first, last = int(parts[0]), int(parts[1])
    else:
        first, last = min(truths, default=0), max(truths, default=-1)
    if not any(first <= n <= last and n in truths for n in inputs):
        raise SequenceError(
            f"{folder}: no frame with ground truth in the scored range {first}..{last}"
        )
    shape = read_luma(inputs[min(inputs)]).shape
    shape2 = (int(shape[0]), int(shape[1]))
    roi_path = folder / "ROI.bmp"
    if roi_path.is_file():
        roi = read_luma(roi_path) > 0
        if roi.shape != shape2:
            raise SequenceError(f"{roi_path}: shape {roi.shape} != frames {shape2}")
    else:
        roi = np.ones(shape2, bool)
    return DiskSequence(
        path=folder,
        name=name or folder.name,
        shape=shape2,
        roi=roi,
        inputs=inputs,
        truths=truths,
        first=first,
        last=last,
    )


def discover(root: Path, max_depth: int = 3) -> list[DiskSequence]:
    """All sequences at or under ``root`` (depth-limited), sorted by path.

    A folder that is itself a sequence is returned as is; otherwise its sub-folders are searched.
    Raises :class:`SequenceError` when nothing is found.
    """
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if is_sequence(folder):
            found.append(folder)
            return
        if depth >= max_depth:
            return
        for child in sorted(p for p in folder.iterdir() if p.is_dir()):
            walk(child, depth + 1)

    if not root.is_dir():
        raise SequenceError(f"{root}: not a folder")
    walk(root, 0)
    if not found:
        raise SequenceError(f"{root}: no CDnet-format sequence (input/ + groundtruth/) found")
    return [load_sequence(p) for p in found]
