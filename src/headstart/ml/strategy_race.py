"""The advice's race: candidate strategies, ordered by the prior (the size × similarity rule's choice
first), each at one setting over a few seeds, judged on validation alone and cut early when it lags, as
Quick-Tune (Arango et al., ICLR 2024) judges fine-tuning settings by partial runs before spending the
full budget on the promising ones.

- A network strategy trains at the middle setting of its tuning grid (its conf's default), for
  `budget_share` of its epochs (min_epochs and patience scaled alike; by default all of them); the
  networks race one another by successive halving (headstart.ml.racing): all to the first rung (never
  before min_epochs, nor before `first_rung_share` of the epochs), the best 1/η on to the end. A
  network judged before its floor is judged at chance: at a quarter of the budget the race cut
  `scratch` at 15-31% validation accuracy on every task of the suite, and at full budget it was the
  best baseline on 8 of those 10.
- A strategy without epochs (a classifier on frozen features, the classical references on the pixels,
  TrAdaBoost) costs seconds: it is tuned as the comparison tunes it, its whole grid.
- Each candidate starts from its own source (a strategy's `source`: one of the advise candidates) at
  its own depth, so variants of one strategy race sources and freeze depths as strategies race.
- The advice is the finisher with the best mean validation accuracy over the race's seeds; ties go to
  the earlier candidate in the prior's order. A classical reference's validation accuracy is its
  cross-validated one (its validation labels are in its training set), as in the comparison.
The race's cost is every image its trainings passed through a network (cut candidates' included);
before it trains, `race_plans` prices it with headstart.ml.cost beside the comparison it stands in for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import mean

import pandas as pd

from headstart.ml import cost
from headstart.ml.config import TrainConfig
from headstart.ml.racing import setting_text
from headstart.ml.strategies import StrategyConfig, TargetTask, TunedStrategy, train_tuned

Configure = Callable[[dict[str, float], int], StrategyConfig]


@dataclass(frozen=True)
class RaceCandidate:
    name: str
    grid: list[dict[str, float]]  # the strategy's whole tuning grid
    configure: Configure
    task: TargetTask  # the target data, with the source model this candidate starts from
    source: str | None = None  # that source's name; None: nothing transferred (a baseline)
    freeze_blocks: int | None = None  # the first blocks kept as the source made them; None: nothing transferred

    @property
    def middle(self) -> dict[str, float]:
        """The setting it races at: the middle of its grid (its conf's default)."""
        return self.grid[len(self.grid) // 2]

    def short(self, share: float) -> Configure:
        """Its configs with the epochs cut to `share` (`short_config`)."""
        return lambda setting, seed: short_config(self.configure(setting, seed), share)

    def trains_epochs(self) -> bool:
        config = self.configure(self.grid[0], 0)
        return config.model != "pixels" and config.procedure in ("fit", "probe_then_finetune")


def shortened(training: TrainConfig, share: float) -> TrainConfig:
    """`training` with its epochs, min_epochs and patience cut to `share` (at least one epoch)."""
    epochs = max(1, math.ceil(training.epochs * share))
    return training.model_copy(
        update={
            "epochs": epochs,
            "min_epochs": min(epochs, math.ceil(training.min_epochs * share)),
            "patience": max(1, math.ceil(training.patience * share)) if training.patience else training.patience,
        }
    )


def short_config(config: StrategyConfig, share: float) -> StrategyConfig:
    probe = config.probe and shortened(config.probe, share)
    return config.model_copy(update={"training": shortened(config.training, share), "probe": probe})


RACE_KNOBS = cost.Knobs(
    seeds="advise.race.seeds",
    grid="the tuning grids of the raced strategies without epochs",
    strategies="advise.race.strategies",
    epochs="training.epochs of each raced strategy (or advise.race.budget_share)",
)


def race_plans(candidates: Sequence[RaceCandidate], seeds: int, budget_share: float) -> list[cost.Plan]:
    """The race's trainings as the comparison's are priced: a network at its middle setting, its epochs
    cut to `budget_share`, once per seed; a strategy without epochs over its whole grid. An upper bound:
    successive halving stops the networks it cuts at a rung. Baselines (no source) are never cut."""
    plans = []
    for candidate in candidates:
        if candidate.trains_epochs():
            configs = (candidate.short(budget_share)(candidate.middle, 0),)
        else:
            configs = tuple(candidate.configure(setting, 0) for setting in candidate.grid)
        train, validation = len(candidate.task.train[0]), len(candidate.task.validation[0])
        plans.append(cost.Plan(candidate.name, configs, seeds, train, validation, required=candidate.source is None))
    return plans


def race_strategies(
    candidates: Sequence[RaceCandidate],
    seeds: list[int],
    budget_share: float,
    eta: int,
    first_rung_share: float = 0.0,
) -> tuple[str, pd.DataFrame, list[dict]]:
    """(the advised strategy; one row per candidate: its source and depth, the setting it ran, its epochs,
    validation accuracy and loss (a cut candidate's at the rung that cut it), images and seconds, whether
    a rung cut it; the rungs of the networks' race)."""
    rows: dict[str, dict] = {}
    racing = [c for c in candidates if c.trains_epochs() and c.configure(c.grid[0], 0).procedure == "fit"]
    for candidate in candidates:
        if candidate in racing:
            continue
        if candidate.trains_epochs():  # probe-then-finetune: at its middle setting, shortened, alone
            setting = candidate.middle
            short = candidate.short(budget_share)
            tuned = train_tuned(candidate.task, [setting], seeds, short)
            rows[candidate.name] = _row(candidate.name, tuned, short(setting, seeds[0]))
        else:
            tuned = train_tuned(candidate.task, candidate.grid, seeds, candidate.configure)
            rows[candidate.name] = _row(candidate.name, tuned, None)
    rungs: list[dict] = []
    if racing:
        middle = [c.middle for c in racing]

        def configure(setting: dict[str, float], seed: int) -> StrategyConfig:
            index = int(setting["candidate"])
            return racing[index].short(budget_share)(middle[index], seed)

        grid = [{"candidate": float(i)} for i in range(len(racing))]

        def own_task(setting: dict[str, float]) -> TargetTask:
            return racing[int(setting["candidate"])].task

        floor = math.ceil(first_rung_share * configure(grid[0], seeds[0]).training.epochs)
        tuned = train_tuned(racing[0].task, grid, seeds, configure, eta=eta, task_for=own_task, rung_floor=floor)
        name_of = {setting_text(g): c.name for g, c in zip(grid, racing)}
        for rung in tuned.rungs:
            rungs.append(
                {
                    "epochs": rung["epochs"],
                    "scores": {name_of[s]: score for s, score in rung["scores"].items()},
                    "kept": [name_of[s] for s in rung["kept"]],
                }
            )
        winner = racing[int(tuned.setting["candidate"])]
        for index, candidate in enumerate(racing):
            row = _row(candidate.name, tuned, configure(grid[index], seeds[0]), middle[index])
            cut_at = next((r for r in rungs if candidate.name not in r["kept"]), None)
            if cut_at is not None:
                row |= {"validation_accuracy": cut_at["scores"][candidate.name], "validation_loss": math.nan}
                row |= {"cut_in_race": True, "epochs": cut_at["epochs"]}
            elif candidate is not winner:  # trained to the end (no rung before it) and lost there
                accuracy, negative_loss = tuned.final_scores[setting_text(grid[index])]
                row |= {"validation_accuracy": accuracy, "validation_loss": -negative_loss}
            # the raced grid's cost, cut candidates' included, spread evenly over its candidates
            row |= {
                "images_seen": tuned.grid_images_seen / len(racing),
                "train_seconds": tuned.grid_seconds / len(racing),
            }
            rows[candidate.name] = row
    order = [c.name for c in candidates]
    where = {c.name: {"source": c.source, "freeze_blocks": c.freeze_blocks} for c in candidates}
    table = pd.DataFrame([{"strategy": name, **where[name], **rows[name]} for name in order])
    finishers = table[~table["cut_in_race"]]
    best = max(
        finishers.itertuples(), key=lambda r: (r.validation_accuracy, -r.validation_loss, -order.index(r.strategy))
    )
    return best.strategy, table, rungs


def _row(
    name: str, tuned: TunedStrategy, config: StrategyConfig | None, setting: dict[str, float] | None = None
) -> dict:
    """A candidate's row from its tuning (over the race's seeds); `config` is what it trained (None: no epochs)."""
    results = list(tuned.results.values())
    return {
        "strategy": name,
        "setting": setting_text(setting or tuned.setting),
        "epochs": sum(t.epochs for t in (config.probe, config.training) if t is not None) if config else 0,
        "validation_accuracy": mean(r.validation_accuracy for r in results),
        "validation_loss": mean(r.validation_loss for r in results),
        "images_seen": float(tuned.grid_images_seen or sum(r.images_seen for r in results)),
        "train_seconds": float(tuned.grid_seconds or sum(r.train_seconds for r in results)),
        "cut_in_race": False,
    }
