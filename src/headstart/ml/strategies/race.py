"""The advice's race: candidate strategies, ordered by the prior (the size × similarity rule's choice
first), each at one setting over a few seeds, judged on validation alone and cut early when it lags, as
Quick-Tune (Arango et al., ICLR 2024) judges fine-tuning settings by partial runs before spending the
full budget on the promising ones.

- A network strategy trains at the middle setting of its tuning grid (its conf's default; with
  `settings="grid"` each setting of its grid is a candidate of its own), for
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
- The advice is the finisher with the best race score, a mean over the race's seeds; ties go to the
  earlier candidate in the prior's order. A network's score is the level its validation accuracy
  settled at over its last epochs (`settled_accuracy`), not its best epoch, which was picked on those
  same images; a classical reference's is its cross-validated accuracy (its validation labels are in its
  training set), as in the comparison; a classifier on frozen features', its tuned validation accuracy.
- Beside the pick, the finishers the race could not separate from it: those whose paired interval of
  the gap to it (per-seed race scores; the t-interval the planned looks use, headstart.ml.looks)
  reaches zero (`separation`). The advice names them cheapest first (`cheapest_first`): a race of two
  seeds separates little, and saying so is the advice's statement of its own uncertainty.
The race's cost is every image its trainings passed through a network (cut candidates' included);
before it trains, `race_plans` prices it with headstart.ml.cost beside the comparison it stands in for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import mean

import numpy as np
import pandas as pd

from headstart.ml import cost
from headstart.ml.config import TrainConfig
from headstart.ml.looks import LookDesign, verdicts
from headstart.ml.racing import setting_text
from headstart.ml.strategies.base import StrategyConfig, TargetTask
from headstart.ml.strategies.tuning import TunedStrategy, train_tuned
from headstart.ml.workers import Workers

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
        """The setting it races at by default: the middle of its grid (its conf's default)."""
        return self.grid[len(self.grid) // 2]

    def raced_settings(self, settings: str) -> list[dict[str, float]]:
        """The settings of its grid a network races: `middle` (one), or `grid` (each)."""
        return list(self.grid) if settings == "grid" else [self.middle]

    def short(self, share: float) -> Configure:
        """Its configs with the epochs cut to `share` (`short_config`)."""
        return lambda setting, seed: short_config(self.configure(setting, seed), share)

    def trains_epochs(self) -> bool:
        return self.configure(self.grid[0], 0).strategy.trains_epochs


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
    return config.with_trainings(lambda training: shortened(training, share))


RACE_KNOBS = cost.Knobs(
    seeds="advise.race.seeds",
    grid="the tuning grids of the raced strategies without epochs",
    strategies="advise.race.strategies",
    epochs="training.epochs of each raced strategy (or advise.race.budget_share)",
)


def race_plans(
    candidates: Sequence[RaceCandidate], seeds: int, budget_share: float, settings: str = "middle"
) -> list[cost.Plan]:
    """The race's trainings as the comparison's are priced: a network at its raced settings, its epochs
    cut to `budget_share`, once per seed; a strategy without epochs over its whole grid. An upper bound:
    successive halving stops the networks it cuts at a rung. Baselines (no source) are never cut."""
    plans = []
    for candidate in candidates:
        if candidate.trains_epochs():
            configs = tuple(candidate.short(budget_share)(s, 0) for s in candidate.raced_settings(settings))
        else:
            configs = tuple(candidate.configure(setting, 0) for setting in candidate.grid)
        train, validation = len(candidate.task.train[0]), len(candidate.task.validation[0])
        plans.append(cost.Plan(candidate.name, configs, seeds, train, validation, required=candidate.source is None))
    return plans


def settled_accuracy(histories: Mapping[int, list[dict]], epochs: int) -> float:
    """A network's race score: its validation accuracy over its last `epochs` epochs, averaged over the
    seeds: a level it settled at, not the epoch picked on these same images. On the suite's first 14
    tasks a raced network's picked epoch read 3-5 points above its test accuracy, a classical reference's
    cross-validated score 3-4 below it, and its last 5 epochs' mean -2.7 to +2.0, so the race set picked
    networks against unpicked references (the suite report's calibration table keeps the count)."""
    return mean(settled_per_seed(histories, epochs))


def settled_per_seed(histories: Mapping[int, list[dict]], epochs: int) -> list[float]:
    """`settled_accuracy` of each seed, in seed order: what the race's paired interval reads."""
    return [
        mean(r["validation_accuracy"] for r in [r for r in histories[seed] if "validation_accuracy" in r][-epochs:])
        for seed in sorted(histories)
    ]


def separation(table: pd.DataFrame, leader: str, confidence: float) -> pd.DataFrame:
    """`table` with each finisher's race score minus the leader's, paired by seed (points), its interval
    and whether that interval reaches zero (`inseparable`: the race could not tell it from the leader,
    the leader itself included). The interval is the planned looks' own (`looks.verdicts`: the paired
    t-interval, one look at `confidence`); with one seed there is none and nothing is separated. A cut
    candidate is separated: a rung judged it behind."""
    finishers = table.index[~table["cut_in_race"].astype(bool)]
    scores = {row: np.asarray(table.at[row, "seed_scores"], dtype=float) for row in finishers}
    lead = scores[table.index[table["strategy"] == leader][0]]
    gains = np.array([100 * (scores[row] - lead) for row in finishers])
    verdict, means, lows, highs = verdicts(gains, LookDesign((len(lead),), 1 - confidence), 0)
    table = table.assign(gap_to_leader_points=math.nan, gap_ci_low=math.nan, gap_ci_high=math.nan, inseparable=False)
    table.loc[finishers, ["gap_to_leader_points", "gap_ci_low", "gap_ci_high"]] = np.stack([means, lows, highs], 1)
    table.loc[finishers, "inseparable"] = verdict != "worse"
    return table


def cheapest_first(table: pd.DataFrame, costs: Mapping[str, float]) -> list[str]:
    """The strategies the race could not separate from its leader, cheapest first by `costs` (the race's
    own price of each, seconds: headstart.ml.cost); a tie, or one without a price, keeps the race's order."""
    names = list(table.loc[table["inseparable"].astype(bool), "strategy"])
    return sorted(names, key=lambda name: (costs.get(name, math.inf), names.index(name)))


def race_strategies(
    candidates: Sequence[RaceCandidate],
    seeds: list[int],
    budget_share: float,
    eta: int,
    first_rung_share: float,
    settings: str = "middle",
    settled_epochs: int = 5,
    confidence: float = 0.95,
    workers: Workers | None = None,
) -> tuple[str, pd.DataFrame, list[dict]]:
    """(the advised strategy; one row per candidate: its source and depth, the setting it ran (with
    `settings="grid"`, its best: every setting of a network's grid races as a candidate of its own), its
    epochs, best-epoch validation accuracy and loss (a cut candidate's at the rung that cut it), its race
    score (`settled_accuracy` for a network, the tuned validation or cross-validated accuracy otherwise)
    and each seed's, images and seconds, whether a rung cut it, its gap to the advised one and whether the
    race could separate them (`separation`, at `confidence`); the rungs of the networks' race). With
    `workers` (the run's pool), each rung's trainings run at once there; where they run does not change
    what they draw."""
    rows: dict[str, dict] = {}
    racing = [c for c in candidates if c.trains_epochs() and c.configure(c.grid[0], 0).strategy.raced]
    for candidate in candidates:
        if candidate in racing:
            continue
        if candidate.trains_epochs():  # probe-then-finetune: alone over its raced settings, shortened
            raced = candidate.raced_settings(settings)
            short = candidate.short(budget_share)
            tuned = train_tuned(candidate.task, raced, seeds, short, workers=workers)
            per_seed = {text: settled_per_seed(h, settled_epochs) for text, h in tuned.final_histories.items()}
            setting = max(raced, key=lambda s: mean(per_seed[setting_text(s)]))
            accuracy, negative_loss = tuned.final_scores[setting_text(setting)]
            rows[candidate.name] = _row(candidate.name, tuned, short(setting, seeds[0]), setting) | {
                "validation_accuracy": accuracy,
                "validation_loss": -negative_loss,
                "race_score": mean(per_seed[setting_text(setting)]),  # settled_accuracy, from its seeds
                "seed_scores": per_seed[setting_text(setting)],
            }
        else:
            tuned = train_tuned(candidate.task, candidate.grid, seeds, candidate.configure, workers=workers)
            rows[candidate.name] = _row(candidate.name, tuned, None)
    rungs: list[dict] = []
    if racing:
        race = (budget_share, eta, first_rung_share, settings, settled_epochs)
        rows |= _race_networks(racing, seeds, *race, rungs, workers)
    order = [c.name for c in candidates]
    where = {c.name: {"source": c.source, "freeze_blocks": c.freeze_blocks} for c in candidates}
    table = pd.DataFrame([{"strategy": name, **where[name], **rows[name]} for name in order])
    finishers = table[~table["cut_in_race"]]
    best = max(finishers.itertuples(), key=lambda r: (r.race_score, -r.validation_loss, -order.index(r.strategy)))
    return best.strategy, separation(table, best.strategy, confidence), rungs


def _race_networks(
    racing: Sequence[RaceCandidate],
    seeds: list[int],
    budget_share: float,
    eta: int,
    first_rung_share: float,
    settings: str,
    settled_epochs: int,
    rungs: list[dict],
    workers: Workers | None = None,
) -> dict[str, dict]:
    """The fit networks' successive halving, each (network, setting) an entry of one grid; a row per
    network: its finisher with the best race score, else its entry that a rung cut last. Fills `rungs`."""
    entries = [(i, setting) for i, c in enumerate(racing) for setting in c.raced_settings(settings)]
    grid = [{"candidate": float(i), "setting": float(racing[i].grid.index(s))} for i, s in entries]

    def configure(entry: dict[str, float], seed: int) -> StrategyConfig:
        candidate = racing[int(entry["candidate"])]
        return candidate.short(budget_share)(candidate.grid[int(entry["setting"])], seed)

    def own_task(entry: dict[str, float]) -> TargetTask:
        return racing[int(entry["candidate"])].task

    def name(index: int) -> str:
        candidate, setting = racing[entries[index][0]], entries[index][1]
        return candidate.name if settings == "middle" else f"{candidate.name} ({setting_text(setting)})"

    floor = math.ceil(first_rung_share * configure(grid[0], seeds[0]).training.epochs)
    tuned = train_tuned(
        racing[0].task, grid, seeds, configure, eta=eta, task_for=own_task, rung_floor=floor, workers=workers
    )
    name_of = {setting_text(entry): name(index) for index, entry in enumerate(grid)}
    for rung in tuned.rungs:
        rungs.append(
            {
                "epochs": rung["epochs"],
                "scores": {name_of[s]: score for s, score in rung["scores"].items()},
                "kept": [name_of[s] for s in rung["kept"]],
            }
        )
    per_entry = []
    for index, entry in enumerate(grid):
        key = setting_text(entry)
        candidate = int(entry["candidate"])
        row = _row(racing[candidate].name, tuned, configure(entry, seeds[0]), entries[index][1])
        cut_at = next((r for r in rungs if name_of[key] not in r["kept"]), None)
        if cut_at is not None:
            row |= {"validation_accuracy": cut_at["scores"][name_of[key]], "validation_loss": math.nan}
            row |= {"cut_in_race": True, "epochs": cut_at["epochs"], "race_score": math.nan, "seed_scores": None}
        else:
            accuracy, negative_loss = tuned.final_scores[key]
            row |= {"validation_accuracy": accuracy, "validation_loss": -negative_loss}
            per_seed = settled_per_seed(tuned.final_histories[key], settled_epochs)
            row |= {"race_score": mean(per_seed), "seed_scores": per_seed}
        # the raced grid's cost, cut entries' included, spread evenly over its entries
        row |= {"images_seen": tuned.grid_images_seen / len(grid), "train_seconds": tuned.grid_seconds / len(grid)}
        per_entry.append((candidate, row))
    rows = {}
    for candidate, network in enumerate(racing):
        own = [row for c, row in per_entry if c == candidate]
        finishers = [row for row in own if not row["cut_in_race"]]
        best = (
            max(finishers, key=lambda r: r["race_score"])
            if finishers
            else max(own, key=lambda r: (r["epochs"], r["validation_accuracy"]))
        )
        cost_of = {key: sum(row[key] for row in own) for key in ("images_seen", "train_seconds")}
        rows[network.name] = best | cost_of
    return rows


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
        "race_score": mean(r.validation_accuracy for r in results),
        "seed_scores": [tuned.results[seed].validation_accuracy for seed in sorted(tuned.results)],
    }
