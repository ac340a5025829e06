"""What `fit` and `fit_seeds_together` keep from one epoch to the next, and how they checkpoint it.

Each seed's record: its history, its kept epoch (the best validation score) with that epoch's weights,
and its early stop (`patience`, not before `min_epochs`); how far one call trains (a pause, the end);
and the checkpoint file: resumed from when it is usable, written atomically after the first epoch,
then at most every `checkpoint_seconds`, and at the end. A checkpoint is a plain dict of tensors and
numbers, loaded with weights_only=True; what else it holds is the training's own (`Resumable`).
Also the error message for a training loss that stopped being finite.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from headstart.ml import distributed
from headstart.ml.config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def validation_score(measured: dict[str, float]) -> tuple[float, float]:
    """What the kept epoch maximises: validation accuracy, the metric every report compares, with
    ties (frequent on a validation set of a few images per class) broken by the lower loss."""
    return measured["validation_accuracy"], -measured["validation_loss"]


@dataclass
class SeedRecord:
    """One seed's training so far: its result (history, kept epoch, early stop), and the kept epoch's
    validation score and weights."""

    result: TrainResult = field(default_factory=TrainResult)
    best_score: tuple[float, float] = (-math.inf, -math.inf)
    best_state: dict[str, torch.Tensor] | None = None

    @classmethod
    def resumed(cls, saved: dict) -> SeedRecord:
        """The record as `saved` holds it (a fit's checkpoint, or one seed's entry in a stack's)."""
        result = TrainResult(saved["history"], saved["best_epoch"], bool(saved.get("stopped_early", False)))
        return cls(result, tuple(saved["best_score"]), saved["best_state"])

    def saved(self) -> dict:
        return {
            "history": self.result.history,
            "best_epoch": self.result.best_epoch,
            "best_score": list(self.best_score),
            "best_state": self.best_state,
            "stopped_early": self.result.stopped_early,
        }

    def add_epoch(
        self, epoch: int, record: dict[str, float], weights: Callable[[], dict[str, torch.Tensor]], config: TrainConfig
    ) -> None:
        """Record epoch `epoch` (counted from 1); keep `weights()` if its validation score is the best so far;
        stop early once `patience` epochs have passed without a better one, and `min_epochs` have run."""
        self.result.history.append(record)
        score = validation_score(record)
        if score > self.best_score:
            self.best_score, self.result.best_epoch = score, epoch
            self.best_state = weights()
        patience = config.patience
        if patience is not None and epoch >= config.min_epochs and epoch - self.result.best_epoch >= patience:
            self.result.stopped_early = True


def last_epoch(start_epoch: int, config: TrainConfig, seeds: list[SeedRecord]) -> int:
    """The epoch one call trains to: a pause (`pause_after`), the end, or none more when every seed of a
    resumed training had stopped early."""
    if all(seed.result.stopped_early for seed in seeds):
        return start_epoch
    return min(config.epochs, config.pause_after or config.epochs)


def non_finite_message(step_losses: torch.Tensor, finite: torch.Tensor, epoch: int, shards: int) -> str:
    """Where the loss first stopped being finite: this process's first bad step, or another process's."""
    bad = (~finite).nonzero().flatten()
    if len(bad):
        where = f"training loss is {float(step_losses[bad[0]])} at epoch {epoch + 1}, step {int(bad[0]) + 1}"
    else:
        where = f"training loss is not finite at epoch {epoch + 1} in another of the {shards} processes"
    return f"{where}: lower the learning rate or check the inputs for NaN or infinite values"


# The RuntimeErrors torch raises for a checkpoint's own content: a truncated or foreign file, a
# state dict of another model, a generator state of another size. Any other RuntimeError (CUDA out
# of memory while resuming, a driver fault) says nothing about the checkpoint and propagates.
UNUSABLE_CHECKPOINT_MESSAGES = ("PytorchStreamReader", "Error(s) in loading state_dict", "GeneratorImplState")


def unusable_checkpoint(error: BaseException) -> bool:
    """Whether `error`, raised while reading or applying a checkpoint, means the checkpoint cannot be used."""
    if isinstance(error, pickle.UnpicklingError | EOFError | KeyError | TypeError | ValueError):
        return True
    return type(error) is RuntimeError and any(m in str(error) for m in UNUSABLE_CHECKPOINT_MESSAGES)


def read_checkpoint(path: Path | None, device: torch.device) -> dict | None:
    """The checkpoint at `path` if it holds plain tensors and values; a truncated file, or one that
    would run code when unpickled (weights_only refuses it), is ignored with a warning."""
    if path is None or not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:
        if not unusable_checkpoint(error):
            raise
        logger.warning(
            "Ignoring checkpoint %s: not a readable checkpoint of plain tensors (%s)", path, str(error)[:300]
        )
        return None


def save_atomically(checkpoint: dict, path: Path) -> None:
    """`torch.save` to a temporary file, then renamed: a kill mid-write leaves the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(checkpoint, temporary)
    temporary.replace(path)


class Resumable(Protocol):
    """A training's state as its checkpoint holds it (its layout is the training's own)."""

    def resume(self, saved: dict) -> int:
        """Apply a checkpoint; the epochs it had trained."""

    def restart(self) -> None:
        """Back to the state before `resume`, which may have failed part-way."""

    def checkpoint(self, epoch: int) -> dict:
        """The checkpoint after epoch `epoch`."""


class CheckpointFile:
    """Where a training resumes from and checkpoints to (no file: `path` None): saved after the first
    epoch, then at most every `seconds`, and when the call's training is finished."""

    def __init__(self, path: Path | None, seconds: float) -> None:
        self.path, self.seconds, self.last_saved = path, seconds, -math.inf

    def resume(self, state: Resumable, device: torch.device, what: str = "") -> int:
        """The epoch to start from: the checkpoint's once `state` has applied it, else 0. A checkpoint
        that is unreadable or does not fit this training is ignored, with a warning, and `state` restarted."""
        saved = read_checkpoint(self.path, device)
        if saved is None:
            return 0
        try:
            start_epoch = state.resume(saved)
        except Exception as error:
            if not unusable_checkpoint(error):
                raise
            logger.warning(
                "Ignoring checkpoint %s: it does not fit this training (%s); starting afresh", self.path, error
            )
            state.restart()
            return 0
        logger.info("Resuming from %s after epoch %d%s", self.path, start_epoch, what)
        return start_epoch

    def save_if_due(self, state: Resumable, epoch: int, finished: bool) -> None:
        """Checkpoint `state` after epoch `epoch` if it is time to, or the call's training is `finished`
        (from the main process only)."""
        due = time.monotonic() - self.last_saved >= self.seconds or finished
        if self.path is not None and due and distributed.is_main_process():
            self.last_saved = time.monotonic()
            save_atomically(state.checkpoint(epoch), self.path)
