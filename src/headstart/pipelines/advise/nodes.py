"""Thin nodes over headstart.ml.transferability and headstart.ml.advice: candidate sources, their
scores per block, the recommendation. Nothing here trains on the target labels."""

from __future__ import annotations

import logging
import time
from functools import partial

import pandas as pd
import torch

from headstart.ml import cost, workers
from headstart.ml.advice import (
    DOMAIN_MEASURES,
    SCORES,
    advice_record,
    choose_advice,
    raced_advice,
    strategy_variant,
    where_it_starts,
)
from headstart.ml.advice import score_candidates as score_every_candidate
from headstart.ml.data.images import LabelledImages
from headstart.ml.data.splits import labels_used_per_class
from headstart.ml.models import build_model
from headstart.ml.models.loading import load_source_model
from headstart.ml.models.stored import StoredModel
from headstart.ml.pretraining import source_fingerprint, train_source_model
from headstart.ml.reports import advice_report, advice_summary_lines, race_report
from headstart.ml.run_records import candidate_source_run
from headstart.ml.strategies import TargetTask, target_task
from headstart.ml.strategies.race import RACE_KNOBS, RaceCandidate, race_plans
from headstart.ml.strategies.race import race_strategies as race_candidates
from headstart.params import AdviseParams, PretrainParams, RuntimeParams, StrategyRaceParams, TransferParams
from headstart.pipelines.shared import configure_strategy

logger = logging.getLogger(__name__)


def prepare_source_candidates(
    source_train: LabelledImages,
    source_validation: LabelledImages,
    catalogued_source_candidates: dict[str, StoredModel] | None,
    catalogued_source_model: dict[str, StoredModel] | None,
    advise: AdviseParams,
    pretrain: PretrainParams,
    runtime: RuntimeParams,
) -> tuple[dict[str, StoredModel], list[dict]]:
    """Each candidate source model, made by pretrain's own code, and its training as an MLflow child run.
    A catalogued candidate or source model of the same fingerprint (data, parameters, task) is reused,
    so only the first `advise` trains, and the candidate with no changes is the pretrained source model."""
    catalogued = {
        model.info["fingerprint"]: model
        for models in (catalogued_source_model or {}, catalogued_source_candidates or {})
        for model in models.values()
        if model.info.get("fingerprint")
    }
    candidates, runs = {}, []
    channels = int(source_train.images.shape[1])
    for name, candidate in advise.candidates.items():
        params = candidate.pretrain_params(pretrain)
        task = candidate.task or source_train.primary_task
        if task not in source_train.labels:
            raise ValueError(
                f"advise.candidates.{name}.task: the source has no task '{task}' ({list(source_train.labels)})"
            )
        if candidate.init == "pretrained" and pretrain.init != "train":
            config, model = load_source_model(
                pretrain.init, pretrain.origin, lambda classes: pretrain.architecture.to_config(channels, classes)
            )
            info = {"init": pretrain.init, "origin": pretrain.origin, "candidate": name, "task": task}
            candidates[name] = StoredModel.from_module(model, config, {**info, "summary": {"epochs_trained": 0}})
            continue
        if candidate.init == "random":
            config = params.architecture.to_config(int(source_train.images.shape[1]), len(source_train.classes[task]))
            torch.manual_seed(params.seed)
            info = {"init": "random", "candidate": name, "task": task, "summary": {"epochs_trained": 0}}
            candidates[name] = StoredModel.from_module(build_model(config), config, info)
            continue
        recipe = params.recipe(runtime)
        made_from = source_fingerprint(recipe.settings, source_train, source_validation, task)
        if made_from in catalogued and not pretrain.retrain:
            logger.info("Candidate %s: reusing the catalogued model of the same data, task and parameters", name)
            stored = catalogued[made_from]
        else:
            logger.info("Candidate %s: training on the source task %s", name, task)
            started = time.perf_counter()
            stored, _, run = train_source_model(
                source_train, source_validation, recipe, task, run_name=f"candidate source {name}"
            )
            stored.info["train_seconds"] = time.perf_counter() - started
            runs.append(candidate_source_run(run, name))
        candidates[name] = StoredModel(stored.config, stored.state, {**stored.info, "candidate": name, "task": task})
    return candidates, runs


def score_candidates(
    source_candidates: dict[str, StoredModel],
    source_train: LabelledImages,
    target_train_pool: LabelledImages,
    target_train: LabelledImages,
    target_validation: LabelledImages,
    advise: AdviseParams,
) -> pd.DataFrame:
    """One row per candidate and block: the transferability scores on the labelled target images
    (training + validation labels, all the labels a user has), the domain measures between source and
    unlabelled target images, and the seconds it took. LEEP and NCE read the source head: final block only."""
    return score_every_candidate(
        source_candidates,
        source_train,
        target_train_pool,
        target_train,
        target_validation,
        advise.neighbours,
        advise.folds,
        advise.domain_images,
        advise.seed,
    )


def advise_strategy(
    transferability_scores: pd.DataFrame,
    source_candidates: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    advise: AdviseParams,
) -> tuple[dict, str, pd.DataFrame]:
    """The prior's recommendation (source, strategy, freeze depth, the numbers behind them), its report,
    and the candidates' ranking by each score; the recommendation and ranking are also printed."""
    scores = transferability_scores
    labels_per_class = labels_used_per_class(target_train, target_validation)
    ranking, recommendation = choose_advice(scores, labels_per_class, advise.rule, advise.ranking_score)
    infos = {name: stored.info for name, stored in source_candidates.items()}
    advice = advice_record(recommendation, ranking, advise.ranking_score, scores, infos)
    for line in advice_summary_lines(advice, ranking, SCORES):
        logger.info(line)
    untrained = [name for name, info in infos.items() if info.get("init") == "random"]
    columns = ["candidate", "block", "features", *SCORES, *DOMAIN_MEASURES]
    markdown = advice_report(
        advice, ranking, scores, columns, advise.neighbours, advise.folds, advise.domain_images, untrained
    )
    return advice, markdown, ranking


def estimate_race_cost(
    candidates: list[RaceCandidate],
    race: StrategyRaceParams,
    transfer: TransferParams,
    runtime: RuntimeParams,
    train: int,
    validation: int,
) -> dict:
    """The race's cost before it trains, beside the comparison's whole grid priced from the same timed steps
    (its seeds, without the test passes); printed, and held to runtime.time_budget_minutes like the comparison."""
    task = candidates[0].task
    meter = cost.Meter(task)
    title = f"Cost of the advice's race ({len(candidates)} strategies; an upper bound: halving cuts networks early)"
    plans = race_plans(candidates, len(race.seeds), race.budget_share, race.settings)
    processes = workers.for_runtime(runtime).count
    race_estimate = cost.estimate_cost(task, plans, runtime.time_budget_minutes, RACE_KNOBS, processes, meter)
    grid = cost.estimate_cost(
        task, transfer.cost_plans(runtime, train, validation, 0), processes=processes, meter=meter
    )
    share = race_estimate.seconds / grid.seconds if grid.seconds else float("nan")
    logger.info("%s", race_estimate.text(title))
    logger.info(
        "The comparison's whole grid (%d strategies, %d seeds): about %.1f min; the race is at most %.1f%% of it",
        len(transfer.compared),
        len(transfer.seeds),
        grid.seconds / 60,
        100 * share,
    )
    cost.check_limit(race_estimate.summary(title), runtime.time_budget_minutes, RACE_KNOBS)
    return {
        "race_estimated_seconds": race_estimate.seconds,
        "grid_estimated_seconds": grid.seconds,
        "race_estimated_share": share,
        # each strategy's price in the race: what orders the strategies the race cannot separate
        "race_estimated_seconds_by_strategy": dict(
            zip(race_estimate.table["strategy"], race_estimate.table["expected_seconds"].astype(float))
        ),
    }


def race_entrants(
    prior_advice: dict,
    source_candidates: dict[str, StoredModel],
    data: tuple[LabelledImages, LabelledImages, LabelledImages, LabelledImages],
    advise: AdviseParams,
    pretrain: PretrainParams,
    transfer: TransferParams,
    runtime: RuntimeParams,
) -> tuple[list[RaceCandidate], str, str]:
    """(the race's candidates, each from its own source at its own depth, the prior's choice first;
    that choice as raced; the source a strategy without `source` starts from). `data`: target training,
    validation, source training and unlabelled target images. Stops on a strategy or source it cannot race."""
    compared = transfer.compared  # a strategy the comparison does not train is not advised either
    skipped = [name for name in advise.race.strategies if name not in compared]
    if skipped:
        logger.info("The race leaves out %s: not among the compared transfer.strategies", ", ".join(skipped))
    # a strategy without `source` starts from the pretrained source model, as in the comparison
    default_source = advise.source_model_candidate(pretrain)
    if default_source is None:
        default_source = prior_advice["candidate"]
        logger.warning(
            "No advise candidate is the pretrained source model: the race trains the strategies without a "
            "`source` from %s, the comparison from the source model, so the audit compares different models",
            default_source,
        )
    total = prior_advice["total_blocks"]
    raced = {name: compared[name] for name in advise.race.strategies if name in compared}
    if not raced:
        raise ValueError("advise.race.strategies: none of them is among the compared transfer.strategies")
    unknown = {name: p.source for name, p in raced.items() if p.source and p.source not in source_candidates}
    if unknown:
        raise ValueError(
            "advise.race.strategies: "
            + ", ".join(f"{name} starts from source '{source}'" for name, source in unknown.items())
            + f", not among advise.candidates ({', '.join(source_candidates)})"
        )
    # the prior's choice as raced: its strategy's variant from its source at its depth, else the strategy
    prior_start = (prior_advice["candidate"], prior_advice["freeze_blocks"])
    prior_raced = strategy_variant(raced, prior_advice["strategy"], *prior_start, default_source, total)
    prior_raced = prior_raced or prior_advice["strategy"]
    tasks: dict[str, TargetTask] = {}

    def task_from(source: str) -> TargetTask:
        if source not in tasks:
            tasks[source] = target_task(source_candidates[source], *data)
        return tasks[source]

    candidates = []
    for name in dict.fromkeys([*([prior_raced] if prior_raced in compared else []), *raced]):
        params = compared[name]
        starts_from, depth = where_it_starts(params, default_source, total)
        grid = params.tuning_grid(transfer.lr_scales)
        configure = partial(configure_strategy, params, runtime)
        candidates.append(
            RaceCandidate(name, grid, configure, task_from(params.source or default_source), starts_from, depth)
        )
    return candidates, prior_raced, default_source


def race_strategies(
    prior_advice: dict,
    prior_advice_markdown: str,
    source_candidates: dict[str, StoredModel],
    target_train: LabelledImages,
    target_validation: LabelledImages,
    source_train: LabelledImages,
    target_unlabelled: LabelledImages,
    advise: AdviseParams,
    pretrain: PretrainParams,
    transfer: TransferParams,
    runtime: RuntimeParams,
) -> tuple[dict, str, pd.DataFrame]:
    """The advice: the race's strategies (each from its own source, at its own depth), the prior's choice
    first so it wins ties, raced on validation; with what the race cost; its report; the race's table."""
    data = (target_train, target_validation, source_train, target_unlabelled)
    candidates, prior_raced, default_source = race_entrants(
        prior_advice, source_candidates, data, advise, pretrain, transfer, runtime
    )
    race = advise.race
    estimate = estimate_race_cost(candidates, race, transfer, runtime, len(target_train), len(target_validation))
    started = time.perf_counter()
    chosen, table, rungs = race_candidates(
        candidates,
        race.seeds,
        race.budget_share,
        race.eta,
        race.first_rung_share,
        race.settings,
        race.settled_epochs,
        transfer.confidence,  # the comparison's level: the strategies it cannot separate are named beside the pick
        workers.for_runtime(runtime),  # the run's pool (or the suite's cluster), as the comparison trains
    )
    seconds = time.perf_counter() - started
    total = prior_advice["total_blocks"]
    score_picks = {
        score: strategy_variant(transfer.compared, advise.score_pick_strategy, first, None, default_source, total)
        for score, first in prior_advice["first_by_score"].items()
    }
    advice = raced_advice(
        prior_advice, prior_raced, chosen, table, rungs, race, seconds, score_picks, estimate, transfer.confidence
    )
    logger.info(
        "Advice after the race on validation: %s, source %s, %s frozen blocks (the prior: %s); not separated "
        "from it on validation: %s",
        chosen,
        advice["candidate"],
        advice["freeze_blocks"],
        prior_raced,
        ", ".join(advice["inseparable"]),
    )
    return advice, race_report(advice, table) + "\n\n" + prior_advice_markdown, table
