"""Fit and evaluate loops (after torchvision's references: train_one_epoch / evaluate).

Data stays on the training device as uint8 when it fits in half its free memory, and is scaled per
batch (no per-step host copies; larger sets are copied a batch at a time); bf16 autocast on CUDA
and on CPUs with AMX (training and its per-epoch validation); the kept epoch is the one with the
best validation accuracy (ties: lower loss), and early stopping waits `min_epochs` first; a
checkpoint (a plain dict of tensors and numbers, loaded with weights_only=True) from which a killed
run resumes.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn
from tqdm.auto import tqdm

from headstart.ml import distributed, progress
from headstart.ml.config import TrainConfig, check_device
from headstart.ml.transfer import parameter_groups, train_mode

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device(name))


def trains_in_bf16(precision: str, device: torch.device) -> bool:
    """Whether `precision` means bf16 autocast on `device` (see TrainConfig.precision)."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return True
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)  # private, hence the fallback
    return device.type == "cpu" and amx()


def epoch_size(count: int, config: TrainConfig) -> int:
    """Training examples per epoch: the data, repeated to fill `min_batches_per_epoch` batches."""
    return max(count, (config.min_batches_per_epoch or 0) * config.batch_size)


def steps_per_epoch(count: int, config: TrainConfig) -> int:
    return -(-epoch_size(count, config) // config.batch_size)


def epoch_order(count: int, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Indices of one epoch: shuffled passes until `min_batches_per_epoch` batches are filled.

    Not torch's RandomSampler(num_samples=...): it draws one more, unused permutation whenever the
    epoch is a whole number of passes, shifting every later draw (augmentation, next epochs)."""
    wanted = epoch_size(count, config)
    passes = -(-wanted // count)
    return torch.cat([torch.randperm(count, generator=generator) for _ in range(passes)])[:wanted]


def fits_on_device(images: torch.Tensor, device: torch.device, share: float = 0.5) -> bool:
    """Whether the uint8 training images fit in `share` of the accelerator's free memory (images
    streamed from disk stay there)."""
    images = getattr(images, "views", images)  # cached features (headstart.ml.feature_cache) are a tensor too
    if not isinstance(images, torch.Tensor):
        return False
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return images.element_size() * images.nelement() < share * free


def scale_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images → floats in [0, 1]; float inputs (cached features, headstart.ml.feature_cache) as they are."""
    return images if images.is_floating_point() else images.float().div_(255.0)


def image_batches(images, batch_size: int, pin_memory: bool = False):
    """uint8 batches in order: slices of an in-memory tensor, or decoded by DataLoader workers from disk."""
    if isinstance(images, torch.Tensor):
        return (images[start : start + batch_size] for start in range(0, len(images), batch_size))
    starts = range(0, len(images), batch_size)
    return images.batches([torch.arange(s, min(s + batch_size, len(images))) for s in starts], pin_memory)


def random_affines(count: int, generator: torch.Generator, max_rotation_deg: float, max_shift: float) -> torch.Tensor:
    """A random rotation and shift per image, as [count, 2, 3] affine matrices, drawn from `generator`."""
    angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(max_rotation_deg)
    shift = (torch.rand(count, 2, generator=generator) * 2 - 1) * (2 * max_shift)  # grid units span 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def apply_affines(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Each image resampled through its affine matrix, in one batched call on the images' device."""
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def augment_images(
    images: torch.Tensor, generator: torch.Generator, max_rotation_deg: float, max_shift: float
) -> torch.Tensor:
    """A random rotation and shift per image, in one batched affine resampling on the images' device."""
    return apply_affines(images, random_affines(len(images), generator, max_rotation_deg, max_shift))


def model_device(model: nn.Module) -> torch.device:
    """Where the model's tensors are; a k-NN model has buffers and no parameters."""
    return next(itertools.chain(model.parameters(), model.buffers())).device


def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """One forward pass in eval mode over uint8 images, in batches; float logits on the model's device.
    In the precision of the caller's autocast, if any: fit's per-epoch validation runs at the training's
    precision; the test metrics (the comparison's and promotion's alike, on any device) in fp32."""
    device = model_device(model)
    model.eval()
    logits = []
    with torch.no_grad():
        for batch in image_batches(images, batch_size):
            logits.append(model(scale_images(batch.to(device))).float())
    return torch.cat(logits)


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512, macro_f1: bool = True
) -> dict:
    """Accuracy, macro-F1 (scikit-learn's; skipped with `macro_f1=False`, as per-epoch validation
    does) and NLL (mean cross-entropy) of `model` on labelled images, plus predictions."""
    logits = predict_logits(model, images, batch_size)
    labels = labels.to(logits.device)
    predictions = logits.argmax(dim=1)
    measured = {
        "accuracy": float((predictions == labels).float().mean()),
        "nll": float(F.cross_entropy(logits, labels)),
        "predictions": predictions.cpu(),
    }
    if macro_f1:
        measured["macro_f1"] = float(f1_score(labels.cpu(), predictions.cpu(), average="macro", zero_division=0))
    return measured


@dataclass
class StepParts:
    """What one step's loss was made of: the outputs the accuracy counts, any per-task losses (for a
    weighting's own backward), and the images forwarded besides the batch (source, unlabelled)."""

    outputs: Any
    losses: Any = None
    extra_images: int = 0


def bare_model(model: nn.Module) -> nn.Module:
    """The model under DDP's and torch.compile's wrappers (their parameter names carry a prefix)."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model) if isinstance(model, nn.parallel.DistributedDataParallel) else model


class CrossEntropyObjective(nn.Module):
    """What `fit` optimises and validates, as a module (its own parameters, buffers and frozen references
    move with `.to()`; its learnable state is in `state_dict`) with one step, `loss(model, inputs,
    targets)`, that keeps nothing between steps. This one: single-task cross-entropy;
    headstart.ml.multitask supplies objectives with several tasks, missing labels and loss weighting;
    headstart.ml.adaptation those that add source images, unlabelled target images or a pull toward the source."""

    reaches_past_forward = False  # True: it forwards more than model(inputs), so it trains in one process only

    def parameter_groups(self) -> list[dict]:
        return []  # learnable loss weights, if any

    def loss(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, StepParts]:
        outputs = model(inputs)
        return F.cross_entropy(outputs.float(), targets), StepParts(outputs)

    def backward(self, model: nn.Module, total: torch.Tensor, parts: StepParts) -> None:
        total.backward()

    def after_step(self, model: nn.Module, inputs: torch.Tensor, targets: Any) -> None:
        """After the optimizer's step, with the step's batch (FAMO re-measures its losses on it)."""

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Correct predictions and labels counted, as tensors on the device: no host synchronisation."""
        return (outputs.argmax(1) == targets).sum(), (targets >= 0).sum()

    def validate(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        measured = evaluate(model, images, targets, macro_f1=False)
        return {"validation_loss": measured["nll"], "validation_accuracy": measured["accuracy"]}


def validation_score(measured: dict[str, float]) -> tuple[float, float]:
    """What the kept epoch maximises: validation accuracy, the metric every report compares, with
    ties (frequent on a validation set of a few images per class) broken by the lower loss."""
    return measured["validation_accuracy"], -measured["validation_loss"]


def non_finite_message(step_losses: torch.Tensor, finite: torch.Tensor, epoch: int, shards: int) -> str:
    """Where the loss first stopped being finite: this process's first bad step, or another process's."""
    bad = (~finite).nonzero().flatten()
    if len(bad):
        where = f"training loss is {float(step_losses[bad[0]])} at epoch {epoch + 1}, step {int(bad[0]) + 1}"
    else:
        where = f"training loss is not finite at epoch {epoch + 1} in another of the {shards} processes"
    return f"{where}: lower the learning rate or check the inputs for NaN or infinite values"


def _to_device(labels, device: torch.device):
    return (
        {k: v.to(device, non_blocking=True) for k, v in labels.items()}
        if isinstance(labels, dict)
        else labels.to(device, non_blocking=True)
    )


def _take(labels, index: torch.Tensor):
    return {k: v[index] for k, v in labels.items()} if isinstance(labels, dict) else labels[index]


# The RuntimeErrors torch raises for a checkpoint's own content: a truncated or foreign file, a
# state dict of another model, a generator state of another size. Any other RuntimeError (CUDA out
# of memory while resuming, a driver fault) says nothing about the checkpoint and propagates.
UNUSABLE_CHECKPOINT_MESSAGES = ("PytorchStreamReader", "Error(s) in loading state_dict", "GeneratorImplState")


def unusable_checkpoint(error: BaseException) -> bool:
    """Whether `error`, raised while reading or applying a checkpoint, means the checkpoint cannot be used."""
    if isinstance(error, pickle.UnpicklingError | EOFError | KeyError | TypeError | ValueError):
        return True
    return type(error) is RuntimeError and any(m in str(error) for m in UNUSABLE_CHECKPOINT_MESSAGES)


def _readable_checkpoint(path: Path | None, device: torch.device) -> dict | None:
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


def make_optimizer(model: nn.Module, objective: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer over the trainable parameters only (nanoGPT), with the groups' own rates and decay."""
    groups = (
        parameter_groups(model, config.body_lr, config.head_lr, config.weight_decay, config.layer_decay)
        + objective.parameter_groups()
    )
    return optimizer_over(groups, config)


def optimizer_over(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over parameter groups that carry their own rates and decay."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.body_lr, momentum=0.9, weight_decay=0.0)
    return torch.optim.AdamW(groups, weight_decay=0.0)  # a group that names no decay gets none (AdamW's own: 0.01)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """Per optimizer step: linear warm-up then cosine annealing (torch's own schedulers), or None (constant)."""
    if config.schedule == "constant":
        return None
    total, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1))
    if not warmup:
        return cosine
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=config.warmup_start, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


@dataclass
class EpochContext:
    """What every step of an epoch shares: where it runs, in which precision, and this process's shard."""

    device: torch.device
    use_bf16: bool
    augment: bool
    shards: int
    shard: slice


def train_one_epoch(
    trained: nn.Module,
    model: nn.Module,
    objective: Any,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    images: torch.Tensor,
    labels: Any,
    order: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    context: EpochContext,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """One pass over `order`. Each step's loss (× its examples) and counts (correct, counted) stay on
    the device, returned for one read per epoch (no host synchronisation per step), with the count of
    images forwarded besides the batches."""
    device = context.device
    steps = -(-len(order) // config.batch_size)
    step_losses = torch.zeros(steps, device=device)
    step_counts = torch.zeros(steps, 2, device=device)
    extra_images = 0
    train_mode(model)
    batches = [order[start : start + config.batch_size] for start in range(0, len(order), config.batch_size)]
    if isinstance(images, torch.Tensor):
        fetched = (images[batch] for batch in batches)
    else:  # from disk: DataLoader workers decode the epoch's batches ahead of the step
        fetched = images.batches([batch.cpu() for batch in batches], pin_memory=device.type == "cuda")
    for step, (batch, raw) in enumerate(zip(batches, fetched)):
        targets = _to_device(_take(labels, batch), device)  # no-ops when the data lives on the device
        inputs = scale_images(raw.to(device, non_blocking=True))
        if hasattr(images, "choose_views"):  # cached features: one of each image's views, from the same generator
            inputs = images.choose_views(inputs, generator)
        elif context.augment:  # on the whole global batch, so every process draws what one process would
            inputs = augment_images(inputs, generator, config.augment.max_rotation_deg, config.augment.max_shift)
        if context.shards > 1:
            inputs, targets = (
                inputs[context.shard],
                _take(targets, torch.arange(len(batch), device=device)[context.shard]),
            )
        if config.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=context.use_bf16):
            loss, parts = objective.loss(trained, inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        objective.backward(model, loss, parts)
        if config.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], config.clip_grad_norm)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        objective.after_step(trained, inputs, targets)
        step_losses[step] = loss.detach() * len(inputs)  # NaN and ±inf stay what they are
        step_counts[step] = torch.stack(objective.correct(parts.outputs, targets))
        extra_images += parts.extra_images  # a host int each step knows without waiting for the device
    return step_losses, step_counts, torch.isfinite(step_losses), extra_images


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, Any],
    validation: tuple[torch.Tensor, Any],
    config: TrainConfig,
    checkpoint_path: Path | None = None,
    objective: Any = None,
) -> TrainResult:
    """Train in place; on return `model` holds the weights of the best validation epoch.

    Labels are a tensor, or a dict of tensors (one per task) for a multi-task `objective`.
    With `checkpoint_path`, an existing checkpoint is resumed from, and a new one is written after
    the first epoch, then at most every `checkpoint_seconds`, and at the end.
    """
    objective = objective or CrossEntropyObjective()
    device = distributed.training_device(resolve_device(config.device))
    model.to(device, memory_format=torch.channels_last if config.channels_last else torch.preserve_format)
    objective.to(device)
    data_device = device if fits_on_device(train[0], device) else torch.device("cpu")
    images, labels = train[0].to(data_device), _to_device(train[1], data_device)
    if data_device != device and device.type == "cuda":  # copied a batch at a time: from pinned memory
        images = images.pin_memory()
    validation = validation[0].to(data_device), _to_device(validation[1], data_device)
    optimizer = make_optimizer(model, objective, config)
    schedule = make_schedule(optimizer, config, steps_per_epoch(len(images), config))
    generator = torch.Generator().manual_seed(config.seed)
    result, best_score, best_state, start_epoch = TrainResult(), (-math.inf, -math.inf), None, 0

    checkpoint = _readable_checkpoint(checkpoint_path, device)
    if checkpoint is not None:
        initial_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
        initial_optimizer = copy.deepcopy(optimizer.state_dict())
        initial_schedule = copy.deepcopy(schedule.state_dict()) if schedule is not None else None
        try:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            if schedule is not None:
                schedule.load_state_dict(checkpoint["schedule"])
            objective.load_state_dict(checkpoint["objective"])
            generator.set_state(checkpoint["generator"])
            result = TrainResult(
                history=checkpoint["history"],
                best_epoch=checkpoint["best_epoch"],
                stopped_early=bool(checkpoint.get("stopped_early", False)),
            )
            best_score, best_state, start_epoch = (
                tuple(checkpoint["best_score"]),
                checkpoint["best_state"],
                checkpoint["epoch"],
            )
            logger.info("Resuming from %s after epoch %d", checkpoint_path, start_epoch)
        except Exception as error:
            if not unusable_checkpoint(error):
                raise
            logger.warning(
                "Ignoring checkpoint %s: it does not fit this training (%s); starting afresh", checkpoint_path, error
            )
            model.load_state_dict(initial_model)
            optimizer.load_state_dict(initial_optimizer)
            if schedule is not None:
                schedule.load_state_dict(initial_schedule)
            generator.manual_seed(config.seed)
            result, best_score, best_state, start_epoch = TrainResult(), (-math.inf, -math.inf), None, 0

    use_bf16 = trains_in_bf16(config.precision, device)
    augment = config.augment.max_rotation_deg > 0 or config.augment.max_shift > 0
    shards = distributed.world_size() if distributed.process_group(device) else 1
    if shards > 1 and objective.reaches_past_forward:
        raise ValueError(f"{type(objective).__name__} reaches past the model's forward: it trains in one process only")
    trained = nn.parallel.DistributedDataParallel(model) if shards > 1 else model
    trained = torch.compile(trained) if config.compile else trained
    context = EpochContext(device, use_bf16, augment, shards, slice(distributed.rank(), None, shards))
    last_saved = -math.inf
    reporting = config.label if distributed.is_main_process() else ""
    progress.report("started", reporting, {"config": config.model_dump(mode="json"), "start_epoch": start_epoch})
    # the epoch this call trains to: a pause, the end, or none more for a resumed run that stopped early
    last = start_epoch if result.stopped_early else min(config.epochs, config.pause_after or config.epochs)
    epochs = tqdm(range(start_epoch, last), disable=not config.progress, desc="epochs", leave=False)
    for epoch in epochs:
        order = epoch_order(len(images), config, generator).to(data_device)
        step_losses, step_counts, finite, extra_images = train_one_epoch(
            trained, model, objective, optimizer, schedule, images, labels, order, config, generator, context
        )
        totals = torch.stack(
            [
                step_losses.sum(),
                *step_counts.sum(0),
                (~finite).sum(),  # steps whose loss is NaN or infinite, in any process once summed
            ]
        )
        loss_sum, correct_sum, counted_sum, bad_steps = distributed.sum_over_processes(totals).tolist()
        if bad_steps:  # every process raises, none waits in the next epoch's collectives
            raise FloatingPointError(non_finite_message(step_losses, finite, epoch, shards))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):  # validation at training's precision
            measured = objective.validate(model, *validation)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / len(order),
            "train_accuracy": correct_sum / max(counted_sum, 1),
            "images_seen": len(order) + extra_images,
            **measured,
        }
        result.history.append(record)
        progress.report("epoch", reporting, record)
        epochs.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{record['validation_accuracy']:.3f}")
        score = validation_score(measured)
        if score > best_score:
            best_score, result.best_epoch = score, epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        done = epoch + 1
        stop = config.patience is not None and done >= config.min_epochs and done - result.best_epoch >= config.patience
        due = time.monotonic() - last_saved >= config.checkpoint_seconds or stop or done == last
        if checkpoint_path is not None and due and distributed.is_main_process():
            last_saved = time.monotonic()
            save_atomically(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict() if schedule is not None else {},
                    "objective": objective.state_dict(),
                    "generator": generator.get_state(),
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "best_score": list(best_score),
                    "best_state": best_state,
                    "epoch": epoch + 1,
                    "stopped_early": stop,
                },
                checkpoint_path,
            )
        if stop:
            result.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    progress.report("ended", reporting, {"best_epoch": result.best_epoch, "stopped_early": result.stopped_early})
    return result
