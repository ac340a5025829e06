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
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from headstart.ml import distributed, progress
from headstart.ml.config import TrainConfig
from headstart.ml.training import (
    TrainResult,
    _readable_checkpoint,
    apply_affines,
    epoch_order,
    fits_on_device,
    make_schedule,
    non_finite_message,
    optimizer_over,
    random_affines,
    resolve_device,
    save_atomically,
    scale_images,
    steps_per_epoch,
    trains_in_bf16,
    unusable_checkpoint,
    validation_score,
)
from headstart.ml.transfer import parameter_groups, train_mode

logger = logging.getLogger(__name__)
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
    config = configs[0]
    if any(
        c.model_copy(update={"seed": 0, "label": ""}) != config.model_copy(update={"seed": 0, "label": ""})
        for c in configs
    ):
        raise ValueError("seeds trained together share every setting but their seed")
    device = distributed.training_device(resolve_device(config.device))
    for model in models:
        model.to(device)
    data_device = device if fits_on_device(train[0], device) else torch.device("cpu")
    images, labels = train[0].to(data_device), train[1].to(data_device)
    validation = validation[0].to(data_device), validation[1].to(data_device)
    seeds = len(models)

    def start():
        """The stack as the models are given: its parameters, optimizer, schedule, generators and records."""
        stacked = StackedModels(models).to(device)
        groups = parameter_groups(models[0], config.body_lr, config.head_lr, config.weight_decay, config.layer_decay)
        optimizer = optimizer_over(stacked.parameter_groups_of(models[0], groups), config)
        schedule = make_schedule(optimizer, config, steps_per_epoch(len(images), config))
        generators = [torch.Generator().manual_seed(c.seed) for c in configs]
        return (
            stacked,
            optimizer,
            schedule,
            generators,
            [TrainResult() for _ in models],
            [(-math.inf, -math.inf)] * seeds,
            [None] * seeds,
        )

    stacked, optimizer, schedule, generators, results, best_scores, best_states = start()
    start_epoch = 0
    checkpoint = _readable_checkpoint(checkpoint_path, device)
    if checkpoint is not None:
        try:
            if checkpoint["seed_values"] != [c.seed for c in configs]:
                raise ValueError(f"it holds seeds {checkpoint['seed_values']}, not {[c.seed for c in configs]}")
            stacked.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            if schedule is not None:
                schedule.load_state_dict(checkpoint["schedule"])
            for generator, state in zip(generators, checkpoint["generators"]):
                generator.set_state(state)
            for index, kept in enumerate(checkpoint["seeds"]):
                results[index] = TrainResult(kept["history"], kept["best_epoch"], bool(kept["stopped_early"]))
                best_scores[index], best_states[index] = tuple(kept["best_score"]), kept["best_state"]
            start_epoch = checkpoint["epoch"]
            logger.info("Resuming from %s after epoch %d (%d seeds, stacked)", checkpoint_path, start_epoch, seeds)
        except Exception as error:
            if not unusable_checkpoint(error):
                raise
            logger.warning(
                "Ignoring checkpoint %s: it does not fit this training (%s); starting afresh", checkpoint_path, error
            )
            stacked, optimizer, schedule, generators, results, best_scores, best_states = start()
            start_epoch = 0

    use_bf16 = trains_in_bf16(config.precision, device)
    augment = config.augment.max_rotation_deg > 0 or config.augment.max_shift > 0
    labels_of = [c.label if distributed.is_main_process() else "" for c in configs]
    for c, label in zip(configs, labels_of):
        progress.report("started", label, {"config": c.model_dump(mode="json"), "start_epoch": start_epoch})
    last = min(config.epochs, config.pause_after or config.epochs)
    last_saved = -math.inf
    for epoch in range(start_epoch, last):
        if all(result.stopped_early for result in results):
            break
        order = torch.stack([epoch_order(len(images), config, g) for g in generators]).to(data_device)  # [S, n]
        steps = -(-order.shape[1] // config.batch_size)
        step_losses = torch.zeros(seeds, steps, device=device)
        step_correct = torch.zeros(seeds, steps, device=device)
        train_mode(stacked.template)
        for step in range(steps):
            batch = order[:, step * config.batch_size : (step + 1) * config.batch_size]  # [S, b]
            inputs = scale_images(images[batch].to(device, non_blocking=True))  # [S, b, C, H, W]
            targets = labels[batch].to(device, non_blocking=True)
            if augment:  # each seed's draws from its own generator, as its training alone would draw them
                affines = torch.cat(
                    [
                        random_affines(batch.shape[1], g, config.augment.max_rotation_deg, config.augment.max_shift)
                        for g in generators
                    ]
                )
                inputs = apply_affines(inputs.flatten(0, 1), affines).view_as(inputs)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                outputs = stacked(inputs)
            per_seed = (
                F.cross_entropy(outputs.float().flatten(0, 1), targets.flatten(), reduction="none")
                .view_as(targets)
                .mean(1)
            )
            optimizer.zero_grad(set_to_none=True)
            per_seed.sum().backward()  # each seed's parameters get the gradient of its own loss only
            if config.clip_grad_norm is not None:
                clip_per_seed([p for g in optimizer.param_groups for p in g["params"]], config.clip_grad_norm)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step_losses[:, step] = per_seed.detach() * batch.shape[1]
            step_correct[:, step] = (outputs.argmax(2) == targets).sum(1)
        finite = torch.isfinite(step_losses)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            nll, accuracy = _validate(stacked, *validation)
        loss_sums, correct_sums = step_losses.sum(1).tolist(), step_correct.sum(1).tolist()  # one read per epoch
        nll, accuracy, all_finite = nll.tolist(), accuracy.tolist(), finite.all(1).tolist()
        for index, result in enumerate(results):
            if result.stopped_early:
                continue
            if not all_finite[index]:
                error = FloatingPointError(non_finite_message(step_losses[index], finite[index], epoch, 1))
                error.seed = configs[index].seed  # which seed of the stack, for the caller's message
                raise error
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sums[index] / order.shape[1],
                "train_accuracy": correct_sums[index] / order.shape[1],
                "images_seen": order.shape[1],
                "validation_loss": nll[index],
                "validation_accuracy": accuracy[index],
            }
            result.history.append(record)
            progress.report("epoch", labels_of[index], record)
            score = validation_score(record)
            if score > best_scores[index]:
                best_scores[index], result.best_epoch = score, epoch + 1
                best_states[index] = stacked.seed_state(index)
            done = epoch + 1
            if (
                config.patience is not None
                and done >= config.min_epochs
                and done - result.best_epoch >= config.patience
            ):
                result.stopped_early = True
        finished = epoch + 1 == last or all(r.stopped_early for r in results)
        due = time.monotonic() - last_saved >= config.checkpoint_seconds or finished
        if checkpoint_path is not None and due and distributed.is_main_process():
            last_saved = time.monotonic()
            save_atomically(
                {
                    "model": stacked.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict() if schedule is not None else {},
                    "seed_values": [c.seed for c in configs],
                    "generators": [g.get_state() for g in generators],
                    "seeds": [
                        {
                            "history": r.history,
                            "best_epoch": r.best_epoch,
                            "best_score": list(s),
                            "best_state": b,
                            "stopped_early": r.stopped_early,
                        }
                        for r, s, b in zip(results, best_scores, best_states)
                    ],
                    "epoch": epoch + 1,
                },
                checkpoint_path,
            )
    for index, (model, result) in enumerate(zip(models, results)):
        model.load_state_dict(best_states[index] if best_states[index] is not None else stacked.seed_state(index))
        progress.report(
            "ended", labels_of[index], {"best_epoch": result.best_epoch, "stopped_early": result.stopped_early}
        )
    return results
