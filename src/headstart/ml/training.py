"""Fit and evaluate loops (after torchvision's references: train_one_epoch / evaluate).

Data stays on the training device as uint8 when it fits in half its free memory, and is scaled per
batch (no per-step host copies; larger sets are copied a batch at a time); bf16 autocast on CUDA
and on CPUs with AMX (training and its per-epoch validation). The kept epoch, early stopping, pauses
and the checkpoint a killed run resumes from: headstart.ml.epochs, shared with the seeds' stack.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn
from tqdm.auto import tqdm

from headstart.ml import distributed, progress
from headstart.ml.augmentation import augment_images
from headstart.ml.config import TrainConfig
from headstart.ml.devices import fits_on_device, model_device, resolve_device, trains_in_bf16
from headstart.ml.epochs import CheckpointFile, SeedRecord, TrainResult, last_epoch, non_finite_message
from headstart.ml.optimizers import make_optimizer, make_schedule
from headstart.ml.transfer import train_mode


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


def scale_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images → floats in [0, 1]; float inputs (cached features, headstart.ml.feature_cache) as they are."""
    return images if images.is_floating_point() else images.float().div_(255.0)


def image_batches(images, batch_size: int, pin_memory: bool = False):
    """uint8 batches in order: slices of an in-memory tensor, or decoded by DataLoader workers from disk."""
    if isinstance(images, torch.Tensor):
        return (images[start : start + batch_size] for start in range(0, len(images), batch_size))
    starts = range(0, len(images), batch_size)
    return images.batches([torch.arange(s, min(s + batch_size, len(images))) for s in starts], pin_memory)


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
    return measured_from_logits(predict_logits(model, images, batch_size), labels, macro_f1)


def measured_from_logits(logits: torch.Tensor, labels: torch.Tensor, macro_f1: bool = True) -> dict:
    """`evaluate`'s metrics from logits already computed (one forward pass serves several records)."""
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
    the objective strategies (headstart.ml.strategies) those adding source or unlabelled images or a pull
    toward the source."""

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


def _to_device(labels, device: torch.device):
    return (
        {k: v.to(device, non_blocking=True) for k, v in labels.items()}
        if isinstance(labels, dict)
        else labels.to(device, non_blocking=True)
    )


def _take(labels, index: torch.Tensor):
    return {k: v[index] for k, v in labels.items()} if isinstance(labels, dict) else labels[index]


@dataclass
class EpochContext:
    """What every step of an epoch shares: where it runs, in which precision, and this process's shard."""

    device: torch.device
    use_bf16: bool
    augment: bool
    shards: int
    shard: slice


def _step_inputs(
    raw: torch.Tensor,
    labels: Any,
    batch: torch.Tensor,
    images: Any,
    config: TrainConfig,
    generator: torch.Generator,
    context: EpochContext,
) -> tuple[torch.Tensor, Any]:
    """One step's inputs and targets on the device: scaled, augmented (or one view of each cached
    image), this process's shard, channels-last where configured."""
    device = context.device
    targets = _to_device(_take(labels, batch), device)  # no-ops when the data lives on the device
    inputs = scale_images(raw.to(device, non_blocking=True))
    if hasattr(images, "choose_views"):  # cached features: one of each image's views, from the same generator
        inputs = images.choose_views(inputs, generator)
    elif context.augment:  # on the whole global batch, so every process draws what one process would
        inputs = augment_images(inputs, generator, config.augment.max_rotation_deg, config.augment.max_shift)
    if context.shards > 1:
        inputs, targets = inputs[context.shard], _take(targets, torch.arange(len(batch), device=device)[context.shard])
    if config.channels_last and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, targets


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
        inputs, targets = _step_inputs(raw, labels, batch, images, config, generator, context)
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


@dataclass
class FitState:
    """What a fit's checkpoint holds and resumes: the model, optimizer, schedule, objective and data
    generator, and the record of its epochs."""

    model: nn.Module
    objective: Any
    optimizer: torch.optim.Optimizer
    schedule: Any
    generator: torch.Generator
    seed_value: int
    seed: SeedRecord = field(default_factory=SeedRecord)
    initial: tuple | None = None  # the model's, optimizer's and schedule's states before `resume`

    def resume(self, saved: dict) -> int:
        self.initial = (
            self.weights(),
            copy.deepcopy(self.optimizer.state_dict()),
            copy.deepcopy(self.schedule.state_dict()) if self.schedule is not None else None,
        )
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(saved["schedule"])
        self.objective.load_state_dict(saved["objective"])
        self.generator.set_state(saved["generator"])
        self.seed = SeedRecord.resumed(saved)
        return saved["epoch"]

    def restart(self) -> None:
        model, optimizer, schedule = self.initial
        self.model.load_state_dict(model)
        self.optimizer.load_state_dict(optimizer)
        if self.schedule is not None:
            self.schedule.load_state_dict(schedule)
        self.generator.manual_seed(self.seed_value)
        self.seed = SeedRecord()

    def checkpoint(self, epoch: int) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else {},
            "objective": self.objective.state_dict(),
            "generator": self.generator.get_state(),
            **self.seed.saved(),
            "epoch": epoch,
        }

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def _training_data(train: tuple, validation: tuple, device: torch.device) -> tuple:
    """The training images and labels and the validation set, on `device` when the images fit there
    (else on the CPU, pinned for a CUDA device), and where that is."""
    data_device = device if fits_on_device(train[0], device) else torch.device("cpu")
    images, labels = train[0].to(data_device), _to_device(train[1], data_device)
    if data_device != device and device.type == "cuda":  # copied a batch at a time: from pinned memory
        images = images.pin_memory()
    validation = validation[0].to(data_device), _to_device(validation[1], data_device)
    return images, labels, validation, data_device


def _epoch_context(model: nn.Module, objective: Any, config: TrainConfig, device: torch.device):
    """The module the steps forward (DDP across processes, compiled on request) and the epoch's context."""
    use_bf16 = trains_in_bf16(config.precision, device)
    augment = config.augment.max_rotation_deg > 0 or config.augment.max_shift > 0
    shards = distributed.world_size() if distributed.process_group(device) else 1
    if shards > 1 and objective.reaches_past_forward:
        raise ValueError(f"{type(objective).__name__} reaches past the model's forward: it trains in one process only")
    trained = nn.parallel.DistributedDataParallel(model) if shards > 1 else model
    trained = torch.compile(trained) if config.compile else trained
    return trained, EpochContext(device, use_bf16, augment, shards, slice(distributed.rank(), None, shards))


def _epoch_record(
    epoch: int, order: torch.Tensor, trained: tuple, state: FitState, validation: tuple, context: EpochContext
) -> dict[str, float]:
    """The epoch's history record: its training loss and accuracy over every process (one read), then
    validation at the training's precision. A loss that is not finite in any process stops every process."""
    step_losses, step_counts, finite, extra_images = trained
    totals = torch.stack([step_losses.sum(), *step_counts.sum(0), (~finite).sum()])  # the last: bad steps
    loss_sum, correct_sum, counted_sum, bad_steps = distributed.sum_over_processes(totals).tolist()
    if bad_steps:  # every process raises, none waits in the next epoch's collectives
        raise FloatingPointError(non_finite_message(step_losses, finite, epoch, context.shards))
    with torch.autocast(context.device.type, dtype=torch.bfloat16, enabled=context.use_bf16):
        measured = state.objective.validate(state.model, *validation)
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum / len(order),
        "train_accuracy": correct_sum / max(counted_sum, 1),
        "images_seen": len(order) + extra_images,
        **measured,
    }


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
    images, labels, validation, data_device = _training_data(train, validation, device)
    optimizer = make_optimizer(model, objective, config)
    schedule = make_schedule(optimizer, config, steps_per_epoch(len(images), config))
    state = FitState(model, objective, optimizer, schedule, torch.Generator().manual_seed(config.seed), config.seed)
    checkpoints = CheckpointFile(checkpoint_path, config.checkpoint_seconds)
    start_epoch = checkpoints.resume(state, device)
    trained, context = _epoch_context(model, objective, config, device)
    reporting = config.label if distributed.is_main_process() else ""
    progress.report("started", reporting, {"config": config.model_dump(mode="json"), "start_epoch": start_epoch})
    last = last_epoch(start_epoch, config, [state.seed])
    epochs = tqdm(range(start_epoch, last), disable=not config.progress, desc="epochs", leave=False)
    for epoch in epochs:
        order = epoch_order(len(images), config, state.generator).to(data_device)
        steps = train_one_epoch(
            trained, model, objective, optimizer, schedule, images, labels, order, config, state.generator, context
        )
        record = _epoch_record(epoch, order, steps, state, validation, context)
        state.seed.add_epoch(epoch + 1, record, state.weights, config)
        progress.report("epoch", reporting, record)
        epochs.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{record['validation_accuracy']:.3f}")
        stopped = state.seed.result.stopped_early
        checkpoints.save_if_due(state, epoch + 1, epoch + 1 == last or stopped)
        if stopped:
            break
    result, best_state = state.seed.result, state.seed.best_state
    if best_state is not None:
        model.load_state_dict(best_state)
    progress.report("ended", reporting, {"best_epoch": result.best_epoch, "stopped_early": result.stopped_early})
    return result
