"""The seeds of one candidate trained together, as one stacked model (torch.func), where the model allows.

Each seed's model is built as it would be alone (its own seeded initialisation), then the seeds'
parameters and buffers are stacked along a new first dimension and one `vmap` of
`functional_call` runs every seed's step at once: one larger batch in place of S small ones, which
is what pays on a GPU and, for small models, on a CPU (fewer, larger kernels; one Python step).
Nothing else is shared: each seed keeps its own generator (data order, augmentation), its batch
norms' statistics, its gradient clip (per seed), its kept epoch and its early stop. AdamW and SGD
update each element from its own gradient and state, so one optimizer over the stacked parameters
makes every seed's update; a seed that has stopped early trains on with the others (one stack), but
its history and kept weights are those of its stop. Per seed, the result equals separate training
to float tolerance (tests/ml/test_stacked_seeds.py).

Where it does not apply, a seed trains alone: one seed, images streamed from disk, several
processes, torch.compile, a model with dropout or drop-path on (its draws would differ per seed
under vmap), or one whose forward vmap cannot batch (stated in the log).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from headstart.ml import distributed, progress
from headstart.ml.augmentation import apply_affines, random_affines
from headstart.ml.config import TrainConfig
from headstart.ml.devices import fits_on_device, resolve_device, trains_in_bf16
from headstart.ml.epochs import CheckpointFile, SeedRecord, TrainResult, last_epoch, non_finite_message
from headstart.ml.optimizers import make_schedule, optimizer_over
from headstart.ml.training import epoch_order, scale_images, steps_per_epoch
from headstart.ml.transfer import parameter_groups, train_mode

STACKED_INPUT_VALUES = 2**24  # a stacked batch holds at most this many input values (64 MB of fp32)


def _draws_randomness(model: nn.Module) -> bool:
    for module in model.modules():
        rate = getattr(module, "p", None) if isinstance(module, nn.modules.dropout._DropoutNd) else None
        if getattr(module, "drop_prob", rate):  # timm's DropPath too
            return True
    return False


def why_not_stacked(model: nn.Module, images, config: TrainConfig) -> str | None:
    """Why the seeds of this training cannot share a stack, or None when they can."""
    if not isinstance(images, torch.Tensor) or hasattr(images, "choose_views"):
        return "its images are streamed or cached features"
    if config.compile:
        return "torch.compile compiles one model"
    if distributed.world_size() > 1:
        return "it trains across processes"
    if _draws_randomness(model):
        return "it has dropout or drop-path on"
    try:  # a training step's forward and backward on a stack of two copies (their own buffers: nothing else moves)
        probe = StackedModels([model, model])
        train_mode(probe.template)
        probe(scale_images(images[:2]).unsqueeze(0).expand(2, *images[:2].shape)).float().sum().backward()
    except Exception as error:  # vmap has no batching rule for some operation of this model
        return f"vmap cannot batch its forward ({type(error).__name__}: {str(error)[:200]})"
    return None


def seeds_per_stack(config: TrainConfig) -> int:
    """`seeds_together`, or where it is null 10 on CUDA and 1 (no stack) on the CPU."""
    if config.seeds_together is not None:
        return config.seeds_together
    return 10 if resolve_device(config.device).type == "cuda" else 1


def stack_size(images: torch.Tensor, config: TrainConfig) -> int:
    """How many seeds one stack holds: `seeds_per_stack`, capped so a stacked batch stays near a usual
    training batch (STACKED_INPUT_VALUES): memory grows with the seeds stacked."""
    per_seed = config.batch_size * math.prod(images.shape[1:])
    return max(1, min(seeds_per_stack(config), STACKED_INPUT_VALUES // max(per_seed, 1)))


class StackedModels(nn.Module):
    """S models of one architecture as one module: every parameter and buffer of `models[0]`'s names,
    stacked on a first dimension of size S; `forward` takes S batches ([S, B, ...]) and returns S outputs."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.template = copy.deepcopy(models[0])  # its structure, training flags and requires_grad
        parameters, buffers = stack_module_state(list(models))  # torch's stacking; set in place of the template's
        for name, value in list(self.template.named_parameters()) + list(self.template.named_buffers()):
            owner_name, _, attribute = name.rpartition(".")
            owner = self.template.get_submodule(owner_name)
            if isinstance(value, nn.Parameter):
                stacked = parameters[name].detach()
                setattr(owner, attribute, nn.Parameter(stacked, requires_grad=value.requires_grad))
            else:
                owner.register_buffer(attribute, buffers[name])

    @property
    def seeds(self) -> int:
        return next(self.template.parameters()).shape[0]

    def _one(self, state: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, state, (inputs,))

    def forward(self, inputs: torch.Tensor, same_inputs: bool = False) -> torch.Tensor:
        state = dict(self.template.named_parameters()) | dict(self.template.named_buffers())
        return torch.vmap(self._one, in_dims=(0, None if same_inputs else 0))(state, inputs)

    def seed_state(self, index: int) -> dict[str, torch.Tensor]:
        """Seed `index`'s state dict, as its own model names it (a copy)."""
        return {name: value[index].detach().clone() for name, value in self.template.state_dict().items()}

    def parameter_groups_of(self, model: nn.Module, groups: list[dict]) -> list[dict]:
        """`groups` (built on `model`, one seed's model: decay by its own shapes, rates by its blocks)
        over the stacked parameters of the same names."""
        names = {id(p): name for name, p in model.named_parameters()}
        stacked = dict(self.template.named_parameters())
        return [{**group, "params": [stacked[names[id(p)]] for p in group["params"]]} for group in groups]


def clip_per_seed(parameters: list[nn.Parameter], max_norm: float) -> None:
    """`clip_grad_norm_` for each seed alone: each seed's gradients scaled by its own total norm."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # [S]
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(scale.view(-1, *[1] * (grad.dim() - 1)))


def _validate(stacked: StackedModels, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512):
    """Per seed: validation loss and accuracy as `evaluate` measures them, as [S] tensors on the device."""
    device = next(stacked.parameters()).device
    stacked.eval()
    with torch.no_grad():
        logits = torch.cat(
            [
                stacked(scale_images(images[start : start + batch_size].to(device)), same_inputs=True).float()
                for start in range(0, len(images), batch_size)
            ],
            dim=1,
        )  # [S, N, C]
    labels = labels.to(device)
    nll = torch.stack([F.cross_entropy(seed_logits, labels) for seed_logits in logits])
    accuracy = (logits.argmax(2) == labels).float().mean(1)
    return nll, accuracy


class SeedStack:
    """The seeds' stack as it trains, and what its checkpoint holds: the stacked models, their optimizer
    and schedule, each seed's data generator and the record of each seed's epochs."""

    def __init__(self, models: Sequence[nn.Module], configs: Sequence[TrainConfig], device: torch.device, steps: int):
        self.models, self.configs, self.device, self.steps_per_epoch = models, configs, device, steps
        self.use_bf16 = trains_in_bf16(configs[0].precision, device)
        self.augment = configs[0].augment.max_rotation_deg > 0 or configs[0].augment.max_shift > 0
        self.restart()

    def restart(self) -> None:
        """The stack as the models are given."""
        config, model = self.configs[0], self.models[0]
        self.stacked = StackedModels(self.models).to(self.device)
        groups = parameter_groups(model, config.body_lr, config.head_lr, config.weight_decay, config.layer_decay)
        self.optimizer = optimizer_over(self.stacked.parameter_groups_of(model, groups), config)
        self.schedule = make_schedule(self.optimizer, config, self.steps_per_epoch)
        self.generators = [torch.Generator().manual_seed(c.seed) for c in self.configs]
        self.seeds = [SeedRecord() for _ in self.models]

    def seed_values(self) -> list[int]:
        return [c.seed for c in self.configs]

    def resume(self, saved: dict) -> int:
        if saved["seed_values"] != self.seed_values():
            raise ValueError(f"it holds seeds {saved['seed_values']}, not {self.seed_values()}")
        self.stacked.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(saved["schedule"])
        for generator, state in zip(self.generators, saved["generators"]):
            generator.set_state(state)
        for index, kept in enumerate(saved["seeds"]):
            self.seeds[index] = SeedRecord.resumed(kept)
        return saved["epoch"]

    def checkpoint(self, epoch: int) -> dict:
        return {
            "model": self.stacked.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else {},
            "seed_values": self.seed_values(),
            "generators": [g.get_state() for g in self.generators],
            "seeds": [seed.saved() for seed in self.seeds],
            "epoch": epoch,
        }

    def all_stopped(self) -> bool:
        return all(seed.result.stopped_early for seed in self.seeds)


def _augmented(inputs: torch.Tensor, count: int, generators: list[torch.Generator], config: TrainConfig):
    """Each seed's batch ([S, b, ...]) augmented with its own generator's draws, as its training alone draws them."""
    rotation, shift = config.augment.max_rotation_deg, config.augment.max_shift
    affines = torch.cat([random_affines(count, g, rotation, shift) for g in generators])
    return apply_affines(inputs.flatten(0, 1), affines).view_as(inputs)


def train_stack_one_epoch(
    stack: SeedStack, images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of every seed over its own `order` row ([S, n]): each step's loss (× its examples) and
    correct count per seed, as [S, steps] tensors on the device (read once per epoch)."""
    device, optimizer, schedule = stack.device, stack.optimizer, stack.schedule
    steps = -(-order.shape[1] // config.batch_size)
    step_losses = torch.zeros(order.shape[0], steps, device=device)
    step_correct = torch.zeros(order.shape[0], steps, device=device)
    train_mode(stack.stacked.template)
    for step in range(steps):
        batch = order[:, step * config.batch_size : (step + 1) * config.batch_size]  # [S, b]
        inputs = scale_images(images[batch].to(device, non_blocking=True))  # [S, b, C, H, W]
        targets = labels[batch].to(device, non_blocking=True)
        if stack.augment:  # each seed's draws from its own generator
            inputs = _augmented(inputs, batch.shape[1], stack.generators, config)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=stack.use_bf16):
            outputs = stack.stacked(inputs)
        flat_losses = F.cross_entropy(outputs.float().flatten(0, 1), targets.flatten(), reduction="none")
        per_seed = flat_losses.view_as(targets).mean(1)
        optimizer.zero_grad(set_to_none=True)
        per_seed.sum().backward()  # each seed's parameters get the gradient of its own loss only
        if config.clip_grad_norm is not None:
            clip_per_seed([p for g in optimizer.param_groups for p in g["params"]], config.clip_grad_norm)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        step_losses[:, step] = per_seed.detach() * batch.shape[1]
        step_correct[:, step] = (outputs.argmax(2) == targets).sum(1)
    return step_losses, step_correct


def _record_epoch(
    stack: SeedStack, epoch: int, order: torch.Tensor, trained: tuple, validation: tuple, labels_of: list[str]
) -> None:
    """Validate every seed, then add the epoch to each seed that has not stopped early; a seed whose
    loss was not finite stops the stack (its seed named on the error)."""
    step_losses, step_correct = trained
    config = stack.configs[0]
    finite = torch.isfinite(step_losses)
    with torch.autocast(stack.device.type, dtype=torch.bfloat16, enabled=stack.use_bf16):
        nll, accuracy = _validate(stack.stacked, *validation)
    loss_sums, correct_sums = step_losses.sum(1).tolist(), step_correct.sum(1).tolist()  # one read per epoch
    nll, accuracy, all_finite = nll.tolist(), accuracy.tolist(), finite.all(1).tolist()
    for index, seed in enumerate(stack.seeds):
        if seed.result.stopped_early:
            continue
        if not all_finite[index]:
            error = FloatingPointError(non_finite_message(step_losses[index], finite[index], epoch, 1))
            error.seed = stack.configs[index].seed  # which seed of the stack, for the caller's message
            raise error
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sums[index] / order.shape[1],
            "train_accuracy": correct_sums[index] / order.shape[1],
            "images_seen": order.shape[1],
            "validation_loss": nll[index],
            "validation_accuracy": accuracy[index],
        }
        seed.add_epoch(epoch + 1, record, functools.partial(stack.stacked.seed_state, index), config)
        progress.report("epoch", labels_of[index], record)


def _check_only_seeds_differ(configs: Sequence[TrainConfig]) -> None:
    def unseeded(config: TrainConfig) -> TrainConfig:
        return config.model_copy(update={"seed": 0, "label": ""})

    if any(unseeded(c) != unseeded(configs[0]) for c in configs):
        raise ValueError("seeds trained together share every setting but their seed")


def fit_seeds_together(
    models: Sequence[nn.Module],
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    configs: Sequence[TrainConfig],
    checkpoint_path: Path | None = None,
) -> list[TrainResult]:
    """`fit` for each of `models` (one per seed, `configs[i].seed`, the configs otherwise equal), in one
    stack; on return each model holds its seed's best validation epoch. With `checkpoint_path`, the
    stack resumes from and writes one checkpoint, as `fit` does."""
    _check_only_seeds_differ(configs)
    config = configs[0]
    device = distributed.training_device(resolve_device(config.device))
    for model in models:
        model.to(device)
    data_device = device if fits_on_device(train[0], device) else torch.device("cpu")
    images, labels = train[0].to(data_device), train[1].to(data_device)
    validation = validation[0].to(data_device), validation[1].to(data_device)
    stack = SeedStack(models, configs, device, steps_per_epoch(len(images), config))
    checkpoints = CheckpointFile(checkpoint_path, config.checkpoint_seconds)
    start_epoch = checkpoints.resume(stack, device, f" ({len(models)} seeds, stacked)")
    labels_of = [c.label if distributed.is_main_process() else "" for c in configs]
    for c, label in zip(configs, labels_of):
        progress.report("started", label, {"config": c.model_dump(mode="json"), "start_epoch": start_epoch})
    last = last_epoch(start_epoch, config, stack.seeds)
    for epoch in range(start_epoch, last):
        order = torch.stack([epoch_order(len(images), config, g) for g in stack.generators]).to(data_device)  # [S, n]
        trained = train_stack_one_epoch(stack, images, labels, order, config)
        _record_epoch(stack, epoch, order, trained, validation, labels_of)
        checkpoints.save_if_due(stack, epoch + 1, epoch + 1 == last or stack.all_stopped())
        if stack.all_stopped():
            break
    for index, (model, seed) in enumerate(zip(models, stack.seeds)):
        model.load_state_dict(seed.best_state if seed.best_state is not None else stack.stacked.seed_state(index))
        ended = {"best_epoch": seed.result.best_epoch, "stopped_early": seed.result.stopped_early}
        progress.report("ended", labels_of[index], ended)
    return [seed.result for seed in stack.seeds]
