"""Content fingerprints: whether a saved model or checkpoint was made from exactly these inputs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def fingerprint(*parts: Any) -> str:
    """SHA-256 over tensors (their bytes), dicts of tensors, and JSON-able values, in order."""
    digest = hashlib.sha256()

    def add(part: Any) -> None:
        if isinstance(part, torch.Tensor):
            digest.update(str((part.dtype, tuple(part.shape))).encode())
            digest.update(part.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif hasattr(part, "fingerprint_bytes"):  # images streamed from disk: their files, sizes and times
            digest.update(part.fingerprint_bytes())
        elif isinstance(part, dict) and part and all(isinstance(v, torch.Tensor) for v in part.values()):
            for key in sorted(part):
                digest.update(key.encode())
                add(part[key])
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())

    for part in parts:
        add(part)
    return digest.hexdigest()
