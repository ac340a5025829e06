"""Multi-task training: masked per-task losses and loss weighting behind one small interface.

Missing labels are -1. Each task's loss averages over its labelled entries only; a task with no
labelled entry in a batch contributes nothing (no NaN) under every weighting (REFERENCE.md).

Weightings (a `LossWeighting` subclass each; add one by subclassing and registering in WEIGHTINGS):
- fixed: Σ w_t·L_t with weights from parameters (Keras `loss_weights`);
- uncertainty (Kendall et al., CVPR 2018): Σ exp(−s_t)·L_t + s_t, s_t = log σ_t² learned;
- gradnorm (Chen et al., ICML 2018): weights learned so each task's gradient norm on the last
  shared layer tracks the mean norm × (relative inverse training rate)^α, renormalised to sum to T;
- pcgrad (Yu et al., NeurIPS 2020): per-task gradients on the shared parameters; a gradient
  conflicting with another (negative dot product) is projected onto the other's normal plane; summed;
- upgrad (Quinton & Rey 2024), TorchJD's `UPGrad` aggregator: the shared parameters' Jacobian (one row
  per task) aggregated so the update conflicts with no task; each head gets its own task's gradient;
- famo (Liu et al., NeurIPS 2023), TorchJD's `FAMO` scalarizer: Σ z_t·log ℓ_t / c backpropagated, and
  after each step the task logits follow the change of the log-losses re-measured on the same batch
  (no per-task gradients: about one more forward per step).
TorchJD's `UW` is Kendall's uncertainty weighting at half our scale (½e^(−s)L + ½s), but it needs
every task's loss in every batch; ours leaves out a task with no label in the batch, so it stays.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn
from torchjd.aggregation import UPGrad
from torchjd.autojac import backward as torchjd_backward
from torchjd.autojac import jac_to_grad
from torchjd.scalarization import FAMO

from headstart.ml.data.images import LabelledImages
from headstart.ml.data.multitask_sets import YES_NO
from headstart.ml.fingerprints import fingerprint
from headstart.ml.models import build_model
from headstart.ml.models.multitask import SHARING_MODELS
from headstart.ml.models.stored import StoredModel
from headstart.ml.racing import best_in_history, rung_epochs, setting_text, successive_halving
from headstart.ml.run_records import MULTITASK_METRICS, multitask_run
from headstart.ml.training import (
    CrossEntropyObjective,
    StepParts,
    TrainConfig,
    bare_model,
    fit,
    predict_logits,
    resolve_device,
    scale_images,
)
from headstart.ml.transfer import body_prefixes, copy_weights


def outputs_per_task(classes: dict[str, list[str]]) -> dict[str, int]:
    """A head's outputs per task: one logit for a yes/no label (classes `YES_NO`: multi-label targets,
    sigmoid and binary cross-entropy), else one per class (softmax and cross-entropy)."""
    return {task: 1 if list(names) == YES_NO else len(names) for task, names in classes.items()}


def task_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean loss over the labelled entries (targets ≥ 0): binary cross-entropy on one logit, else cross-entropy."""
    if logits.shape[1] == 1:
        labelled = targets >= 0
        return F.binary_cross_entropy_with_logits(logits[labelled, 0].float(), targets[labelled].float())
    return F.cross_entropy(logits.float(), targets, ignore_index=-1)


def task_predictions(logits: torch.Tensor) -> torch.Tensor:
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def masked_losses(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean loss per task over its labelled entries; tasks without any are left out."""
    losses = {}
    for task, logits in outputs.items():
        if (targets[task] >= 0).any():  # all missing: a mean over nothing would be NaN
            losses[task] = task_loss(logits, targets[task])
    return losses


class LossWeighting(nn.Module):
    """Turns per-task losses into gradients. `combine` gives the scalar that is logged and checked
    for NaN; `backward` fills the gradients (plain backprop of that scalar unless overridden)."""

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)

    def parameter_groups(self) -> list[dict]:
        return []

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, model: nn.Module, total: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        total.backward()

    def after_step(self, remeasure: Callable[[], dict[str, torch.Tensor]]) -> None:
        """After the optimizer's step; `remeasure()` gives the batch's task losses under the new weights."""

    def weights(self) -> dict[str, float]:
        return {task: 1.0 for task in self.tasks}


class FixedWeighting(LossWeighting):
    def __init__(self, tasks: list[str], weights: dict[str, float] | None = None) -> None:
        super().__init__(tasks)
        self.fixed = {task: float((weights or {}).get(task, 1.0)) for task in tasks}

    def combine(self, losses):
        return sum(self.fixed[task] * loss for task, loss in losses.items())

    def weights(self):
        return dict(self.fixed)


class UncertaintyWeighting(LossWeighting):
    def __init__(self, tasks: list[str], lr: float = 1e-2) -> None:
        super().__init__(tasks)
        self.log_variance = nn.Parameter(torch.zeros(len(tasks)))
        self.lr = lr

    def parameter_groups(self):
        return [{"params": [self.log_variance], "lr": self.lr, "weight_decay": 0.0}]

    def combine(self, losses):
        s = {task: self.log_variance[i] for i, task in enumerate(self.tasks)}
        return sum(torch.exp(-s[task]) * loss + s[task] for task, loss in losses.items())

    def weights(self):
        return {task: float(torch.exp(-self.log_variance[i].detach())) for i, task in enumerate(self.tasks)}


class GradNormWeighting(LossWeighting):
    def __init__(self, tasks: list[str], alpha: float = 1.5, lr: float = 1e-2) -> None:
        super().__init__(tasks)
        self.task_weights = nn.Parameter(torch.ones(len(tasks)))
        self.register_buffer("initial_losses", torch.full((len(tasks),), float("nan")))
        self.alpha, self.lr = alpha, lr

    def parameter_groups(self):
        return [{"params": [self.task_weights], "lr": self.lr, "weight_decay": 0.0}]

    def combine(self, losses):
        weights = self.task_weights.detach()
        return sum(weights[self.tasks.index(task)] * loss for task, loss in losses.items())

    def backward(self, model, total, losses):
        index = [self.tasks.index(task) for task in losses]
        with torch.no_grad():
            for i, task in zip(index, losses):
                if torch.isnan(self.initial_losses[i]):
                    self.initial_losses[i] = losses[task].detach()
        total.backward(retain_graph=True)
        if len(losses) < 2:
            return
        shared = model.last_shared_parameters()
        norms = torch.stack(
            [
                self.task_weights[i]
                * torch.cat([g.flatten() for g in torch.autograd.grad(losses[task], shared, retain_graph=True)]).norm()
                for i, task in zip(index, losses)
            ]
        )
        ratios = torch.stack([losses[task].detach() / self.initial_losses[i] for i, task in zip(index, losses)])
        target = norms.mean().detach() * (ratios / ratios.mean()) ** self.alpha
        self.task_weights.grad = torch.autograd.grad((norms - target).abs().sum(), self.task_weights)[0]

    def after_step(self, remeasure):
        with torch.no_grad():
            self.task_weights.clamp_(min=1e-3)
            self.task_weights.mul_(len(self.tasks) / self.task_weights.sum())

    def weights(self):
        return {task: float(self.task_weights[i].detach()) for i, task in enumerate(self.tasks)}


class SharedGradientWeighting(LossWeighting):
    """The losses summed, and the shared parameters' gradient made from the per-task gradients by
    `shared_backward` (with one task in the batch, plain backprop)."""

    def combine(self, losses):
        return sum(losses.values())

    def backward(self, model, total, losses):
        if len(losses) < 2:
            total.backward()
        else:
            self.shared_backward(model.shared_parameters(), total, losses)

    def shared_backward(self, shared: list[nn.Parameter], total: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError


class PCGradWeighting(SharedGradientWeighting):
    def __init__(self, tasks: list[str], seed: int = 0) -> None:
        super().__init__(tasks)
        self.random = random.Random(seed)

    def shared_backward(self, shared, total, losses):
        grads = []
        for loss in losses.values():
            parts = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
            grads.append(
                torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(parts, shared)])
            )
        total.backward()  # the heads' gradients; the shared ones are replaced below
        projected = [g.clone() for g in grads]
        for i, g in enumerate(projected):
            others = [j for j in range(len(grads)) if j != i]
            self.random.shuffle(others)
            for j in others:
                dot = torch.dot(g, grads[j])
                if dot < 0:
                    g -= dot / grads[j].pow(2).sum().clamp_min(1e-12) * grads[j]
        combined, offset = torch.stack(projected).sum(0), 0
        for p in shared:
            p.grad = combined[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()


class UPGradWeighting(SharedGradientWeighting):
    """TorchJD's UPGrad on the shared parameters (Jacobian descent); the heads by plain backprop."""

    def shared_backward(self, shared, total, losses):
        torchjd_backward(list(losses.values()), inputs=shared, retain_graph=True)  # fills each p.jac
        total.backward()  # the heads' gradients; the shared ones are replaced below
        for p in shared:
            p.grad = None
        jac_to_grad(shared, UPGrad())


class FAMOWeighting(LossWeighting):
    """TorchJD's FAMO: the task weights z = softmax(w) move toward the task whose loss fell least.
    A batch without some task's labels trains on the mean of the others and leaves w as it is."""

    def __init__(self, tasks: list[str], lr: float = 0.025, weight_decay: float = 1e-3) -> None:
        super().__init__(tasks)
        self.famo = FAMO(len(tasks), lr=lr, weight_decay=weight_decay)
        self.complete = False  # whether the last combined batch had every task (FAMO's update needs them all)

    def combine(self, losses):
        self.complete = len(losses) == len(self.tasks)
        if not self.complete:
            return sum(losses.values()) / len(losses)
        return self.famo(torch.stack([losses[task] for task in self.tasks]))

    def after_step(self, remeasure):
        if self.complete:
            with torch.no_grad():
                after = remeasure()
            self.famo.update(torch.stack([after[task] for task in self.tasks]))

    def weights(self):
        return {task: float(w) for task, w in zip(self.tasks, torch.softmax(self.famo._w.detach(), 0))}


WEIGHTINGS = {
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "gradnorm": GradNormWeighting,
    "pcgrad": PCGradWeighting,
    "upgrad": UPGradWeighting,
    "famo": FAMOWeighting,
}


class _OneTask(nn.Module):
    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, images):
        return self.model(images)[self.task]


def evaluate_multitask(
    model: nn.Module, images: torch.Tensor, labels: dict[str, torch.Tensor], macro_f1: bool = True
) -> dict[str, dict]:
    """Per task: accuracy, macro-F1 (unless `macro_f1=False`), NLL (cross-entropy, binary for a yes/no
    label) and predictions over that task's labelled entries only."""
    results = {}
    for task, task_labels in labels.items():
        labelled = task_labels >= 0
        if not labelled.any():
            continue
        logits = predict_logits(_OneTask(model, task), images[labelled])
        truth = task_labels[labelled].to(logits.device)
        predictions = task_predictions(logits)
        results[task] = {
            "accuracy": float((predictions == truth).float().mean()),
            "nll": float(task_loss(logits, truth)),
            "predictions": predictions.cpu(),
        }
        if macro_f1:
            results[task]["macro_f1"] = float(
                f1_score(truth.cpu(), predictions.cpu(), average="macro", zero_division=0)
            )
    return results


class MultiTaskObjective(CrossEntropyObjective):
    """`fit`'s objective for a multi-task model: weighted masked losses (+ soft sharing's penalty)."""

    def __init__(self, weighting: LossWeighting, penalty: float = 0.0) -> None:
        super().__init__()
        self.weighting, self.penalty = weighting, penalty  # the weighting's parameters move and save with it

    def parameter_groups(self):
        return self.weighting.parameter_groups()

    def loss(self, model, inputs, targets):
        outputs = model(inputs)
        losses = masked_losses(outputs, targets)
        if losses:
            total = self.weighting.combine(losses)
        else:  # no labels for any task in this batch: a zero that keeps the graph, no NaN
            total = sum(logits.float().sum() * 0.0 for logits in outputs.values())
        if self.penalty:
            total = total + self.penalty * bare_model(model).penalty()
        return total, StepParts(outputs, losses)

    def backward(self, model, total, parts):
        self.weighting.backward(model, total, parts.losses) if parts.losses else total.backward()

    def after_step(self, model, inputs, targets):
        def remeasure() -> dict[str, torch.Tensor]:  # the same batch after the step; batch norms' statistics kept
            kept = {name: buffer.clone() for name, buffer in model.named_buffers()}
            losses = masked_losses(model(inputs), targets)
            for name, buffer in model.named_buffers():
                buffer.copy_(kept[name])
            return losses

        self.weighting.after_step(remeasure)

    def correct(self, outputs, targets):
        """Correct predictions and labelled entries over every task, as device tensors (no host sync)."""
        correct = sum((task_predictions(logits) == targets[task]).sum() for task, logits in outputs.items())
        counted = sum((targets[task] >= 0).sum() for task in outputs)
        return correct, counted

    def validate(self, model, images, labels):
        measured = evaluate_multitask(model, images, labels, macro_f1=False)
        record = {
            "validation_loss": sum(m["nll"] for m in measured.values()) / len(measured),
            "validation_accuracy": sum(m["accuracy"] for m in measured.values()) / len(measured),
        }
        for task, m in measured.items():
            record[f"validation_accuracy_{task}"] = m["accuracy"]
            record[f"validation_loss_{task}"] = m["nll"]
        record.update({f"weight_{task}": w for task, w in self.weighting.weights().items()})
        return record


@dataclass
class TrainedNetwork:
    """One trained network of a multi-task method: all tasks, or one task for the single-task baseline."""

    config: dict  # build_model's argument
    model: nn.Module  # on the CPU
    info: dict  # method, seed, part, history, train_seconds, loss_weights


def train_method(
    sharing: str,
    make_weighting: Callable[[list[str], int], LossWeighting],
    penalty: float,
    trunk: dict,
    classes: dict[str, int],
    head: dict,
    train: tuple[torch.Tensor, dict[str, torch.Tensor]],
    validation: tuple[torch.Tensor, dict[str, torch.Tensor]],
    seeds: list[int],
    config_for: Callable[[int], TrainConfig],
    source_state: dict[str, torch.Tensor] | None = None,
    checkpoint_dir: Path | None = None,
    name: str = "method",
    parts: list[str] | None = None,
) -> list[TrainedNetwork]:
    """Every seed of one method: a network per task for `single_task`, one shared network otherwise,
    the trunk(s) copied from `source_state` when given (only the networks of `parts`, if given).
    Checkpoints are named by a fingerprint of everything that shapes the training (settings, data,
    source weights, seed) and deleted when done; a paused training (`pause_after`) keeps its own."""
    groups = method_parts(sharing, classes)
    groups = {part: tasks for part, tasks in groups.items() if parts is None or part in parts}
    trained = []
    for seed in seeds:
        for part, tasks in groups.items():
            config = {"name": SHARING_MODELS[sharing], "trunk": trunk, "tasks": {t: classes[t] for t in tasks}, **head}
            torch.manual_seed(seed)
            model = build_model(config)
            if source_state is not None:
                for body in [model.trunk] if hasattr(model, "trunk") else list(model.networks.values()):
                    copy_weights(body, source_state, body_prefixes(body))
            weighting = make_weighting(tasks, seed)
            data = (train[0], {t: train[1][t] for t in tasks}), (validation[0], {t: validation[1][t] for t in tasks})
            checkpoint = None
            if checkpoint_dir is not None:
                made_from = fingerprint(
                    config,
                    penalty,
                    weighting.weights(),
                    config_for(seed).model_dump(mode="json", exclude={"pause_after"}),
                    seed,
                    part,
                    *data[0][:1],
                    data[0][1],
                    *data[1][:1],
                    data[1][1],
                    source_state or {},
                )
                checkpoint = checkpoint_dir / f"multitask-{name}-{part}-seed{seed}-{made_from[:16]}.pt"
            started = time.perf_counter()
            result = fit(model, *data, config_for(seed), checkpoint, MultiTaskObjective(weighting, penalty))
            if checkpoint is not None and config_for(seed).pause_after is None:
                checkpoint.unlink(missing_ok=True)
            info = {
                "seed": seed,
                "part": part,
                "history": result.history,
                "train_seconds": time.perf_counter() - started,
                "loss_weights": weighting.weights(),
            }
            trained.append(TrainedNetwork(config, model.cpu(), info))
    return trained


def method_config(training, execution, seed: int, setting: dict[str, float]) -> TrainConfig:
    """A method's training at one seed and candidate setting, with no bar of its own (the grid's one line
    counts the methods); module-level, so a worker process unpickles it (with functools.partial)."""
    return TrainConfig.of(training, execution, seed, setting["lr_scale"]).model_copy(update={"progress": False})


def method_parts(sharing: str, classes: dict[str, int]) -> dict[str, list[str]]:
    """A method's networks by part: one per task for `single_task`, else one (`all`) for every task."""
    return {task: [task] for task in classes} if sharing == "single_task" else {"all": list(classes)}


@dataclass
class TunedMethod:
    """A method's kept networks (per part, the candidate with the best mean validation score over the
    seeds) and how they were chosen: per part the kept setting, the rungs of the race, the grid's cost."""

    networks: list[TrainedNetwork]
    tuning: dict[str, dict]


def tune_method(
    grid: list[dict[str, float]],
    train_candidate: Callable[[dict[str, float], str, int | None, Path], list[TrainedNetwork]],
    parts: list[str],
    epochs: int,
    eta: int | None,
    forget: Callable[[dict[str, float], str], None] = lambda setting, part: None,
    earliest: int = 1,
) -> TunedMethod:
    """Each part's grid raced on validation by successive halving (headstart.ml.racing; every candidate
    to the end with `eta` null), each part on its own: a single-task network is tuned for its task, as a
    practitioner training it alone would. `train_candidate(setting, part, pause_after, scratch)` trains
    every seed of one candidate; a paused candidate resumes from its checkpoint (in `scratch` when the
    run has no checkpoint directory), so racing never changes what a survivor's full training gives."""
    kept, tuning = [], {}
    for part in parts:
        networks, tuning[part] = tune_part(grid, train_candidate, part, epochs, eta, forget, earliest)
        kept += networks
    return TunedMethod(kept, tuning)


@dataclass(frozen=True)
class MethodRecipe:
    """Everything that trains one multi-task method but its seeds: picklable, so a worker process runs
    it (headstart.ml.workers). `make_weighting(setting, tasks, seed)` and `penalty(setting)` read a
    candidate setting of `grid` (its rates' multiplier, its weighting's or penalty's own values)."""

    sharing: str
    make_weighting: Callable[[dict[str, float], list[str], int], LossWeighting]
    penalty: Callable[[dict[str, float]], float]
    trunk: dict
    classes: dict[str, int]
    head: dict
    train: tuple[torch.Tensor, dict[str, torch.Tensor]]
    validation: tuple[torch.Tensor, dict[str, torch.Tensor]]
    config_for: Callable[[int, dict[str, float]], TrainConfig]
    grid: list[dict[str, float]]
    eta: int | None
    source_state: dict[str, torch.Tensor] | None = None
    checkpoint_dir: Path | None = None
    name: str = "method"

    @classmethod
    def of(
        cls,
        method: Any,
        name: str,
        trunk: dict,
        head: dict,
        train: LabelledImages,
        validation: LabelledImages,
        config_for: Callable[[int, dict[str, float]], TrainConfig],
        lr_scales: list[float],
        eta: int | None,
        source_state: dict[str, torch.Tensor] | None,
        checkpoint_dir: Path | None,
    ) -> MethodRecipe:
        """A method's recipe from its conf entry (`MultitaskMethodParams`) and the data it trains on."""
        return cls(
            method.sharing,
            method.weighting_for,
            method.penalty_for,
            trunk,
            outputs_per_task(train.classes),
            head,
            (train.images, train.labels),
            (validation.images, validation.labels),
            config_for,
            method.grid(lr_scales),
            eta,
            source_state,
            checkpoint_dir,
            name,
        )

    @property
    def parts(self) -> list[str]:
        return list(method_parts(self.sharing, self.classes))

    def _checkpoint_name(self, setting: dict[str, float]) -> str:
        return f"{self.name}-{setting_text(setting)}".replace(", ", "-").replace("=", "")

    def train_setting(
        self, setting: dict[str, float], part: str, seeds: list[int], pause_after: int | None, scratch: Path
    ) -> list[TrainedNetwork]:
        """Every seed of one part at one candidate setting (paused after `pause_after` epochs, if given)."""
        return train_method(
            self.sharing,
            lambda tasks, seed: self.make_weighting(setting, tasks, seed),
            self.penalty(setting),
            self.trunk,
            self.classes,
            self.head,
            self.train,
            self.validation,
            seeds,
            lambda seed: self.config_for(seed, setting).model_copy(update={"pause_after": pause_after}),
            self.source_state,
            self.checkpoint_dir or scratch,
            self._checkpoint_name(setting),
            parts=[part],
        )

    def tune(self, seeds: list[int]) -> TunedMethod:
        """Every candidate of `grid` over `seeds`, raced per part on validation (`tune_method`); the kept
        networks returned."""

        def forget(setting, part):  # a cut candidate's paused checkpoints
            if self.checkpoint_dir is not None:
                pattern = f"multitask-{self._checkpoint_name(setting)}-{part}-seed*.pt"
                for path in self.checkpoint_dir.glob(pattern):
                    path.unlink(missing_ok=True)

        def train_candidate(setting, part, pause_after, scratch):
            return self.train_setting(setting, part, seeds, pause_after, scratch)

        first = self.config_for(seeds[0], self.grid[0])
        return tune_method(self.grid, train_candidate, self.parts, first.epochs, self.eta, forget, first.min_epochs)

    def train_kept(self, seeds: list[int], settings: dict[str, dict[str, float]]) -> list[TrainedNetwork]:
        """More seeds at each part's kept setting (chosen on validation at the first look): no race."""
        with tempfile.TemporaryDirectory(prefix="headstart-mt-look-") as scratch:
            networks = []
            for part in self.parts:
                networks += self.train_setting(settings[part], part, seeds, None, Path(scratch))
        for network in networks:
            network.info["tuned"] = settings[network.info["part"]]
        return networks


def tune_part(
    grid: list[dict[str, float]],
    train_candidate: Callable[[dict[str, float], str, int | None, Path], list[TrainedNetwork]],
    part: str,
    epochs: int,
    eta: int | None,
    forget: Callable[[dict[str, float], str], None] = lambda setting, part: None,
    earliest: int = 1,
) -> tuple[list[TrainedNetwork], dict]:
    """One part's race (see `tune_method`): the kept candidate's networks, and how it was chosen."""
    spent: dict[tuple[int, int], float] = {}

    def score(networks: list[TrainedNetwork], epochs_so_far: int) -> tuple[float, float]:
        scores = [best_in_history(n.info["history"], epochs_so_far) for n in networks]
        return sum(a for a, _ in scores) / len(scores), sum(b for _, b in scores) / len(scores)

    with tempfile.TemporaryDirectory(prefix="headstart-mt-race-") as scratch:

        def train(candidate: int, pause_after: int | None) -> list[TrainedNetwork]:
            networks = train_candidate(grid[candidate], part, pause_after, Path(scratch))
            for network in networks:  # seconds over a candidate's paused and resumed calls
                key = (candidate, network.info["seed"])
                spent[key] = spent.get(key, 0.0) + network.info["train_seconds"]
                network.info["train_seconds"] = spent[key]
            return networks

        budgets = rung_epochs(epochs, len(grid), eta or 1, earliest)  # no rung before min_epochs
        alive, rungs = successive_halving(list(range(len(grid))), budgets, eta or 1, lambda c, e: score(train(c, e), e))
        finished = {c: train(c, None) for c in alive}
    for candidate in set(range(len(grid))) - set(alive):
        forget(grid[candidate], part)
    best = max(alive, key=lambda c: (score(finished[c], epochs), -c))  # ties: the grid's order
    for network in finished[best]:
        network.info["tuned"] = grid[best]
    return finished[best], {
        "setting": grid[best],
        "validation_accuracy": score(finished[best], epochs)[0],
        "candidates": len(grid),
        "rungs": [
            {
                "epochs": rung["epochs"],
                "scores": {setting_text(grid[c]): v[0] for c, v in rung["scores"].items()},
                "kept": [setting_text(grid[c]) for c in rung["kept"]],
            }
            for rung in rungs
        ],
        "grid_seconds": sum(spent.values()),
    }


def stored_networks(method: str, method_params: dict, networks: list[TrainedNetwork]) -> dict[str, StoredModel]:
    """A method's trained networks as stored models, `<method>-seed<s>-<part>` each (part: `all`, or the
    task of a single-task network), their info naming the method and its parameters."""
    stored = {}
    for network in networks:
        info = {"method": method, "method_params": method_params, **network.info}
        stored[f"{method}-seed{info['seed']}-{info['part']}"] = StoredModel.from_module(
            network.model, network.config, info
        )
    return stored


def inference_seconds(models: list[nn.Module], images: torch.Tensor, device: torch.device) -> float:
    """Seconds to predict every task for `images` with `models` (all single-task networks, or one)."""
    started = time.perf_counter()
    with torch.no_grad():
        for model in models:
            model.eval()
            for start in range(0, len(images), 512):
                model(scale_images(images[start : start + 512].to(device)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def merged_history(parts: list[StoredModel]) -> list[dict]:
    """One record per epoch over a method × seed's networks: a single-task network's metrics get its
    task as a suffix (`validation_accuracy_left`), so their curves sit side by side in one run."""
    history: dict[int, dict] = {}
    for stored in parts:
        suffix = "" if stored.info["part"] == "all" else f"_{stored.info['part']}"
        for record in stored.info["history"]:
            entry = history.setdefault(record["epoch"], {"epoch": record["epoch"]})
            entry.update(
                {
                    f"{k}{suffix}" if suffix and k != "epoch" and not k.endswith(suffix) else k: v
                    for k, v in record.items()
                }
            )
    return [history[epoch] for epoch in sorted(history)]


def evaluate_methods(
    models: dict[str, StoredModel], test: LabelledImages, device: str
) -> tuple[pd.DataFrame, list[dict]]:
    """Rows of (method, seed, task, test metrics, cost) and one child-run record per method × seed. Cost:
    the parameters and training seconds of the method's networks, and their seconds to predict `test`."""
    resolved = resolve_device(device)
    grouped: dict[tuple[str, int], list[StoredModel]] = {}
    for stored in models.values():
        grouped.setdefault((stored.info["method"], stored.info["seed"]), []).append(stored)
    rows, runs = [], []
    for (method, seed), parts in grouped.items():
        built = [stored.build().to(resolved) for stored in parts]
        cost = {
            "parameters": sum(p.numel() for m in built for p in m.parameters()),
            "train_seconds": sum(stored.info["train_seconds"] for stored in parts),
            # one epoch of all the method's networks: with the same data and batch size for every
            # method, its cost per step relative to another method's
            "epoch_seconds": sum(
                stored.info["train_seconds"] / max(len(stored.info["history"]), 1) for stored in parts
            ),
            "inference_seconds": inference_seconds(built, test.images, resolved),
        }
        metrics = {}
        for model in built:
            metrics.update(evaluate_multitask(model, test.images, {t: test.labels[t] for t in model.tasks}))
        tuned = parts[0].info["method_params"].get("tuned", {})
        for task, measured in metrics.items():
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "task": task,
                    **{k: measured[k] for k in MULTITASK_METRICS},
                    **cost,
                    "tuned": f"{task}: {tuned[task]}" if task in tuned else tuned.get("all", ""),
                }
            )
        runs.append(multitask_run(method, seed, parts[0].info["method_params"], merged_history(parts), metrics, cost))
    return pd.DataFrame(rows), runs


def validation_curves(models: dict[str, StoredModel]) -> pd.DataFrame:
    """Mean validation accuracy per method and epoch over its seeds (and a single-task method's
    networks, each its own task's): whether the budget let training plateau."""
    rows = [
        {
            "method": stored.info["method"],
            "epoch": record["epoch"],
            "validation_accuracy": record["validation_accuracy"],
        }
        for stored in models.values()
        for record in stored.info["history"]
    ]
    return pd.DataFrame(rows).groupby(["method", "epoch"], sort=False, as_index=False)["validation_accuracy"].mean()
