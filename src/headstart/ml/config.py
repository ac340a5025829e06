"""The settings the library trains from, declared once.

headstart.params composes these same classes into the parameters Kedro validates on `params:`, so a
knob is written in one place, with one default and one range, and conf and library cannot drift.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Frozen and strict: a misspelt key in conf is an error naming it, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def available_devices() -> list[str]:
    """The devices this machine can train on, as `runtime.device` names them."""
    found = ["cpu", *(f"cuda:{index}" for index in range(torch.cuda.device_count()))]
    mps = getattr(torch.backends, "mps", None)
    return [*found, "mps"] if mps is not None and mps.is_available() else found


def check_device(name: str) -> str:
    """`name` when this machine has that device ("auto" always), so a missing GPU is named before
    training starts rather than by torch's driver error in the middle of a run."""
    found = available_devices()
    if name == "auto" or name in found or (name == "cuda" and "cuda:0" in found):
        return name
    raise ValueError(f"{name} is not available on this machine; devices found: {', '.join(found)}")


# A device this machine has: a missing GPU stops the run before it starts, naming the devices found.
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$"), AfterValidator(check_device)]


class ExecutionParams(Settings):
    """How a training runs on this machine (the part of `runtime` every training reads)."""

    device: Device = "auto"  # CUDA when present, else CPU
    progress: bool = True  # a progress bar per training
    # A checkpoint after the first epoch, then at most one per this many seconds, and after the last:
    # a killed run loses at most this much work, and short trainings do not write one per epoch.
    checkpoint_seconds: float = Field(30.0, ge=0)
    # bf16 autocast (weights and optimizer state stay fp32). auto: where the hardware computes in bf16
    # natively, CUDA or a CPU with AMX tiles (oneDNN); fp32 elsewhere, where bf16 would be emulated.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    channels_last: bool = True  # NHWC memory format for conv nets: faster on oneDNN CPUs and tensor-core GPUs
    compile: bool = False  # torch.compile each training (a compilation first; pays off on long runs)
    # The seeds of one candidate trained together, at most this many in one stacked model
    # (headstart.ml.stacked_seeds: one vmap'd step for all); 1: each seed alone; null: 10 on CUDA and
    # 1 on the CPU, where a stack measured slower than seed after seed (benchmarks/stacked_seeds.py).
    seeds_together: int | None = Field(None, ge=1)


class AugmentParams(Settings):
    max_rotation_deg: float = Field(0.0, ge=0, le=180)  # random rotation of each training image, in degrees
    max_shift: float = Field(0.0, ge=0, le=0.5)  # random shift, as a fraction of the image size


class TrainingParams(Settings):
    """A training's budget and rates."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    body_lr: float = Field(1e-3, gt=0)
    head_lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"  # sgd: momentum 0.9 (torchvision's reference recipe)
    # constant, or cosine: linear warm-up from warmup_start × the rates over warmup_epochs, then cosine to 0
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: int = Field(0, ge=0)
    warmup_start: float = Field(0.01, gt=0, le=1)
    clip_grad_norm: float | None = Field(None, gt=0)  # clip the gradients' total L2 norm before each step
    # layer-wise learning-rate decay: body block i of n at body_lr · layer_decay^(n − i) (e.g. 0.75 for a ViT)
    layer_decay: float | None = Field(None, gt=0, le=1)
    patience: int | None = Field(None, ge=1)  # early stopping on validation accuracy; null: never
    # No early stop before this epoch: a network from scratch on a few labels sits at chance for
    # several epochs while its validation loss rises, and stopping then keeps an untrained model.
    min_epochs: int = Field(0, ge=0)
    # A budget in optimizer steps: an epoch cycles through the data until it has made this many
    # steps, so 1 label per class gets as many updates as 10 (epochs alone would starve it).
    min_batches_per_epoch: int | None = Field(None, ge=1)
    augment: AugmentParams = AugmentParams()
    # A frozen prefix's output computed once, on this many views of each training image (view 0 as it
    # is, the others augmented once; one view without augmentation), and only what follows trained
    # (headstart.ml.feature_cache); null: every step forwards the frozen blocks, augmenting afresh.
    frozen_feature_views: int | None = Field(8, ge=1)


class TrainConfig(TrainingParams, ExecutionParams):
    """One training: its budget and rates, where it runs, its seed and its name in progress reports."""

    seed: int = 0
    label: str = ""  # e.g. "scratch seed 0" (headstart.ml.progress)
    # Pause after this epoch, checkpointed, as if training on to `epochs` (a rung of successive halving,
    # headstart.ml.racing): the same call without it then resumes to the very model an unpaused run makes.
    pause_after: int | None = Field(None, ge=1)

    @classmethod
    def of(cls, training: TrainingParams, execution: ExecutionParams, seed: int, lr_scale: float = 1.0) -> TrainConfig:
        """The training conf describes, on this runtime, with every learning rate times `lr_scale`."""
        return cls.model_validate(
            {
                **execution.model_dump(include=set(ExecutionParams.model_fields)),
                **training.model_dump(),
                "body_lr": training.body_lr * lr_scale,
                "head_lr": training.head_lr * lr_scale,
                "seed": seed,
            }
        )
