"""Training a multi-task method: its networks over seeds (`train_method`), each part's grid of candidate
settings raced on validation (`tune_method`), and the picklable recipe a worker process runs
(`MethodRecipe`)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from headstart.ml.data.images import LabelledImages
from headstart.ml.fingerprints import fingerprint
from headstart.ml.models import build_model
from headstart.ml.models.multitask import SHARING_MODELS
from headstart.ml.multitask.objective import MultiTaskObjective, outputs_per_task
from headstart.ml.multitask.weightings import LossWeighting
from headstart.ml.racing import best_in_history, rung_epochs, setting_text, successive_halving
from headstart.ml.training import TrainConfig, fit
from headstart.ml.transfer import body_prefixes, copy_weights


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
