"""Resumable training checkpoints: atomic, verified, safetensors for weights.

Layout of a run directory::

    checkpoints/step-000200/  model.safetensors, objective.safetensors (KD's W_fit), trainer.pt (optimizer,
                              scheduler, RNG states; loaded with weights_only=True), manifest.json (step,
                              sha256 of every file)

A checkpoint is written into ``step-N.tmp/`` and renamed into place, so a run killed mid-write leaves
either the complete checkpoint or none. On resume the latest checkpoint's files are checked against
their sha256; a corrupted one raises ``CheckpointError`` naming it and the intact previous one, which
is never deleted (at least two are kept).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PREFIX = "step-"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be trusted (missing manifest, checksum mismatch, unreadable file)."""


@dataclass
class Checkpoint:
    step: int
    path: Path
    tensors: dict[str, dict[str, torch.Tensor]]  # file stem -> state dict (model, objective)
    trainer: dict  # optimizer, scheduler, rng


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_dirs(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first (``*.tmp`` leftovers of a killed write are ignored)."""
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit():
            found.append((int(p.name[len(PREFIX):]), p))
    return sorted(found)


def save_checkpoint(root: Path, step: int, tensors: dict[str, dict[str, torch.Tensor]], trainer: dict,
                    keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically and prune all but the newest ``keep`` (at least 2)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f"{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for stem, state in tensors.items():
        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, tmp / f"{stem}.safetensors")
    torch.save(trainer, tmp / "trainer.pt")
    files = sorted(p.name for p in tmp.iterdir())
    manifest = {"step": step, "sha256": {name: sha256(tmp / name) for name in files}}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for _, old in checkpoint_dirs(root)[: -max(keep, 2)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def verify(path: Path) -> int:
    """Check a checkpoint's manifest and checksums; return its step or raise ``CheckpointError``."""
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = manifest["sha256"]
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"{manifest_path}: missing or unreadable manifest ({err})") from None
    for name, digest in expected.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: listed in the manifest but missing")
        if sha256(file) != digest:
            raise CheckpointError(f"{file}: sha256 mismatch, the file is corrupted")
    return int(manifest["step"])


def load_latest(root: Path) -> Checkpoint | None:
    """The newest checkpoint, verified; None if there is none. A corrupted newest one is an error."""
    found = checkpoint_dirs(root)
    if not found:
        return None
    step, path = found[-1]
    try:
        verify(path)
    except CheckpointError as err:
        previous = f"the previous checkpoint {found[-2][1]} is intact" if len(found) > 1 else "there is no earlier one"
        raise CheckpointError(
            f"latest checkpoint {path} is corrupted: {err}. It was left in place for inspection; {previous}. "
            f"Delete {path} to resume from the previous checkpoint."
        ) from None
    tensors = {p.stem: load_file(p) for p in sorted(path.glob("*.safetensors"))}
    trainer = torch.load(path / "trainer.pt", weights_only=True)
    return Checkpoint(step, path, tensors, trainer)
