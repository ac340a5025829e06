import numpy as np
import pandas as pd
import pytest
import torch

from headstart.ml.config import TrainConfig
from headstart.ml.metrics import t_interval
from headstart.ml.strategies import StrategyConfig, TargetTask, train_strategy
from headstart.ml.strategies import tuning as strategies
from headstart.ml.strategies.race import (
    RaceCandidate,
    cheapest_first,
    race_plans,
    race_strategies,
    separation,
    settled_accuracy,
    shortened,
)
from headstart.ml.transfer import TransferSpec
from tests.ml.test_transfer import tiny, toy_data

TRAINING = TrainConfig(epochs=8, min_epochs=4, patience=4, batch_size=16, progress=False)


def task() -> TargetTask:
    images, labels = toy_data()
    torch.manual_seed(1)
    source = tiny(num_classes=5)
    train, validation = (images[:24], labels[:24]), (images[24:], labels[24:])
    return TargetTask({"name": "small_cnn", "widths": [4, 8]}, source.state_dict(), 3, train, validation)


def network(name: str, spec: TransferSpec, lr: float, own_task: TargetTask | None = None) -> RaceCandidate:
    def configure(setting: dict, seed: int) -> StrategyConfig:
        training = TRAINING.model_copy(update={"seed": seed, "body_lr": lr * setting["lr_scale"], "head_lr": 1e-2})
        return StrategyConfig(spec=spec, training=training)

    return RaceCandidate(name, [{"lr_scale": s} for s in (0.3, 1.0, 3.0)], configure, own_task or task())


def knn() -> RaceCandidate:
    def configure(setting: dict, seed: int) -> StrategyConfig:
        training = TRAINING.model_copy(update={"seed": seed})
        return StrategyConfig(
            procedure="nearest_neighbours",
            spec=TransferSpec(copy_blocks=0),
            training=training,
            model="pixels",
            setting=setting,
        )

    return RaceCandidate("pixels_knn", [{"neighbours": 1}, {"neighbours": 3}], configure, task())


def test_shortening_cuts_epochs_min_epochs_and_patience_alike():
    short = shortened(TRAINING, 0.25)
    assert (short.epochs, short.min_epochs, short.patience) == (2, 1, 1)


def test_the_race_cuts_networks_by_rungs_tunes_the_classical_reference_and_counts_what_it_trained():
    candidates = [
        network("finetune_top", TransferSpec(copy_blocks="all", freeze_blocks=-1), 1e-3),
        network("scratch", TransferSpec(copy_blocks=0), 3e-3),
        network("feature_extractor", TransferSpec(copy_blocks="all", freeze_blocks="all"), 1e-3),
        knn(),
    ]
    chosen, table, rungs = race_strategies(candidates, [0, 1], budget_share=0.5, eta=3, first_rung_share=0.0)
    table = table.set_index("strategy")
    assert list(table.index) == ["finetune_top", "scratch", "feature_extractor", "pixels_knn"]
    assert len(rungs) == 1 and rungs[0]["epochs"] == 2 and len(rungs[0]["kept"]) == 1  # 4 epochs, η = 3: one rung
    assert table["cut_in_race"].sum() == 2 and table.loc[rungs[0]["kept"][0], "epochs"] == 4
    assert (table.loc[table["cut_in_race"], "epochs"] == 2).all()
    assert table.loc["pixels_knn", "epochs"] == 0 and table.loc["pixels_knn", "setting"] in (
        "neighbours=1",
        "neighbours=3",
    )
    assert (table["images_seen"] > 0).all() and table.loc[~table["cut_in_race"], "validation_loss"].notna().all()
    finishers = table[~table["cut_in_race"]]
    assert finishers.loc[chosen, "race_score"] == finishers["race_score"].max()
    assert table.loc[rungs[0]["kept"][0], "setting"] == "lr_scale=1"  # the middle of its grid
    # a network's score is the level it settled at, never above its best epoch; a reference's, its own
    networks = finishers.drop(index="pixels_knn")
    assert (networks["race_score"] <= networks["validation_accuracy"]).all() and len(networks) == 1
    assert finishers.loc["pixels_knn", "race_score"] == finishers.loc["pixels_knn", "validation_accuracy"]
    assert table.loc[table["cut_in_race"], "race_score"].isna().all()


def test_a_networks_race_score_is_its_last_epochs_mean_over_seeds_not_its_best_epoch():
    lucky = [{"epoch": e, "validation_accuracy": a} for e, a in enumerate([0.5, 1.0, 0.6, 0.7, 0.8], start=1)]
    steady = [{"epoch": e, "validation_accuracy": a} for e, a in enumerate([0.5, 0.7, 0.7, 0.8, 0.8], start=1)]
    assert settled_accuracy({0: lucky}, 3) == pytest.approx(0.7)
    assert settled_accuracy({0: lucky, 1: steady}, 2) == pytest.approx((0.75 + 0.8) / 2)
    assert settled_accuracy({0: [{"epoch": 1, "train_loss": 1.0}, *steady]}, 10) == pytest.approx(0.7)


def test_with_every_setting_raced_each_networks_setting_is_a_candidate_and_its_row_its_best():
    candidates = [
        network("finetune_top", TransferSpec(copy_blocks="all", freeze_blocks=-1), 1e-3),
        network("scratch", TransferSpec(copy_blocks=0), 3e-3),
        knn(),
    ]
    chosen, table, rungs = race_strategies(
        candidates, [0], budget_share=0.5, eta=3, first_rung_share=0.0, settings="grid"
    )
    scored = set(rungs[0]["scores"])
    assert scored == {f"{n} (lr_scale={s:g})" for n in ("finetune_top", "scratch") for s in (0.3, 1.0, 3.0)}
    assert len(rungs[0]["kept"]) == 2 and list(table["strategy"]) == ["finetune_top", "scratch", "pixels_knn"]
    table = table.set_index("strategy")
    for name in ("finetune_top", "scratch"):  # its row: its finisher, else its best entry at the rung
        kept = [k for k in rungs[0]["kept"] if k.startswith(name)]
        if kept:
            assert not table.loc[name, "cut_in_race"] and f"({table.loc[name, 'setting']})" in " ".join(kept)
        else:
            best = max(v for k, v in rungs[0]["scores"].items() if k.startswith(name))
            assert table.loc[name, "cut_in_race"] and table.loc[name, "validation_accuracy"] == best
    plans = {plan.name: plan for plan in race_plans(candidates, 1, 0.5, "grid")}
    assert len(plans["scratch"].candidates) == 3  # priced at every setting it races
    assert chosen in table.index[~table["cut_in_race"]]


def test_a_tie_goes_to_the_earlier_candidate_the_priors_choice():
    first, second = knn(), knn()
    second = RaceCandidate("pixels_knn_again", second.grid, second.configure, second.task)
    chosen, _, _ = race_strategies([second, first], [0], budget_share=1.0, eta=3, first_rung_share=0.0)
    assert chosen == "pixels_knn_again"


def test_each_raced_network_trains_from_its_own_source(monkeypatch):
    real, other = task(), task()
    used = []

    def spy(own_task, config, checkpoint_path=None):
        used.append((own_task, config.training.body_lr))
        return train_strategy(own_task, config, checkpoint_path)

    monkeypatch.setattr(strategies, "train_strategy", spy)
    spec = TransferSpec(copy_blocks="all", freeze_blocks=-1)
    candidates = [network("from_real", spec, 1e-3, real), network("from_other", spec, 2e-3, other)]
    candidates = [RaceCandidate(c.name, c.grid, c.configure, c.task, c.name[5:], 1) for c in candidates]
    _, table, _ = race_strategies(candidates, [0], budget_share=1.0, eta=3, first_rung_share=0.0)
    table = table.set_index("strategy")
    assert table.loc["from_other", "source"] == "other" and table.loc["from_real", "freeze_blocks"] == 1
    by_task = {id(t): {lr for u, lr in used if u is t} for t in (real, other)}
    assert by_task == {id(real): {1e-3}, id(other): {2e-3}} and {id(u) for u, _ in used} == set(by_task)


def test_the_race_is_priced_as_it_trains_networks_at_one_setting_the_others_over_their_grid():
    top = network("finetune_top", TransferSpec(), 1e-3)
    top = RaceCandidate(top.name, top.grid, top.configure, top.task, "digits", 0)
    plans = {plan.name: plan for plan in race_plans([top, knn()], 2, 0.5)}
    top = plans["finetune_top"]
    assert len(top.candidates) == 1 and top.candidates[0].training.epochs == 4 and top.trainings == 2
    assert top.candidates[0].training.body_lr == pytest.approx(1e-3)  # the middle of its grid: lr_scale 1
    assert len(plans["pixels_knn"].candidates) == 2 and plans["pixels_knn"].required  # a baseline: never cut
    assert not top.required and top.train == 24


def test_no_rung_comes_before_the_first_rung_share_of_the_epochs():
    candidates = [
        network("finetune_top", TransferSpec(copy_blocks="all", freeze_blocks=-1), 1e-3),
        network("scratch", TransferSpec(copy_blocks=0), 3e-3),
    ]
    _, _, early = race_strategies(candidates, [0], budget_share=1.0, eta=3, first_rung_share=0.0)
    _, _, late = race_strategies(candidates, [0], budget_share=1.0, eta=3, first_rung_share=0.75)
    assert early[0]["epochs"] == 4 and late[0]["epochs"] == 6  # min_epochs 4 of 8; then ⌈0.75 × 8⌉


def raced(scores: dict[str, list[float] | None]) -> pd.DataFrame:
    """A race's table as `race_strategies` makes it: per-seed scores, None for a candidate a rung cut."""
    return pd.DataFrame(
        [
            {"strategy": name, "cut_in_race": seeds is None, "seed_scores": seeds, "race_score": np.mean(seeds or [0])}
            for name, seeds in scores.items()
        ]
    )


def test_the_set_is_exactly_the_finishers_whose_paired_interval_with_the_leader_reaches_zero():
    scores = {
        "finetune_top": [0.80, 0.82, 0.84],  # the leader
        "feature_svm": [0.79, 0.80, 0.83],  # gaps -1, -2, -1 points: 95% interval [-2.8, +0.1], reaches zero
        "scratch": [0.70, 0.71, 0.72],  # gaps -10, -11, -12: separated
        "finetune_full": None,  # cut by a rung: separated
    }
    table = separation(raced(scores), "finetune_top", 0.95).set_index("strategy")
    assert list(table.index[table["inseparable"]]) == ["finetune_top", "feature_svm"]
    # the interval is the project's own paired t-interval (metrics.t_interval), n = 3
    assert table.loc["feature_svm", "gap_ci_high"] == pytest.approx(t_interval([-1, -2, -1], 0.95)[2])
    assert table.loc["feature_svm", "gap_ci_high"] > 0 > table.loc["scratch", "gap_ci_high"]
    assert np.isnan(table.loc["finetune_full", "gap_ci_high"])
    # flipped: about the same mean gap, but the seeds agree on it (-1, -1.3, -1.3): feature_svm is separated
    steady = separation(raced(scores | {"feature_svm": [0.79, 0.8067, 0.8267]}), "finetune_top", 0.95)
    assert list(steady.loc[steady["inseparable"], "strategy"]) == ["finetune_top"]
    # and scratch, noisy enough, joins it: its interval then reaches zero
    noisy = separation(raced(scores | {"scratch": [0.70, 0.90, 0.75]}), "finetune_top", 0.95)
    assert set(noisy.loc[noisy["inseparable"], "strategy"]) == {"finetune_top", "feature_svm", "scratch"}
    # a lower level narrows the interval: at 50%, feature_svm's [-1.6, -1.1] clears zero
    assert list(separation(raced(scores), "finetune_top", 0.5).query("inseparable")["strategy"]) == ["finetune_top"]
    # one seed: no interval, so no finisher is separated (a cut one still is)
    single = separation(raced({name: s and s[:1] for name, s in scores.items()}), "finetune_top", 0.95)
    assert list(single.loc[single["inseparable"], "strategy"]) == ["finetune_top", "feature_svm", "scratch"]


def test_the_set_is_named_cheapest_first_by_the_races_price():
    table = separation(
        raced({"finetune_top": [0.8, 0.9], "pixels_knn": [0.7, 0.9], "feature_svm": [0.75, 0.9]}), "finetune_top", 0.95
    )
    assert cheapest_first(table, {"finetune_top": 30.0, "pixels_knn": 1.0, "feature_svm": 4.0}) == [
        "pixels_knn",
        "feature_svm",
        "finetune_top",
    ]
    # unpriced: last, in the race's order
    assert cheapest_first(table, {"feature_svm": 4.0}) == ["feature_svm", "finetune_top", "pixels_knn"]


def test_the_race_states_each_finishers_seed_scores_and_whether_it_is_separated_from_the_pick():
    candidates = [network("finetune_top", TransferSpec(copy_blocks="all", freeze_blocks=-1), 1e-3), knn()]
    chosen, table, _ = race_strategies(candidates, [0, 1], budget_share=0.5, eta=3, first_rung_share=0.0)
    table = table.set_index("strategy")
    assert all(len(scores) == 2 for scores in table["seed_scores"])
    assert table.loc[chosen, "inseparable"] and table.loc[chosen, "gap_to_leader_points"] == 0
    for name, row in table.iterrows():
        assert row["race_score"] == pytest.approx(np.mean(row["seed_scores"]))
        assert row["inseparable"] == (row["gap_ci_high"] >= 0 or name == chosen)


def test_the_race_on_the_runs_workers_chooses_and_scores_as_on_one():
    """The advice's race hands each rung's trainings to the run's pool (two processes here): every row, its
    score per seed and the rungs are those of the race in one process."""
    from headstart.ml.workers import Workers

    def candidates():
        return [
            network("finetune_top", TransferSpec(copy_blocks="all", freeze_blocks=-1), 1e-3),
            network("scratch", TransferSpec(copy_blocks=0), 3e-3),
            network("feature_extractor", TransferSpec(copy_blocks="all", freeze_blocks="all"), 1e-3),
            knn(),
        ]

    race = {"budget_share": 0.5, "eta": 3, "first_rung_share": 0.0}
    alone = race_strategies(candidates(), [0, 1], **race)
    pool, submitted = Workers(2), []
    submit = pool.submit
    pool.submit = lambda function, *args: submitted.append(function) or submit(function, *args)
    try:
        pooled = race_strategies(candidates(), [0, 1], **race, workers=pool)
    finally:
        pool.close()
    assert len(submitted) >= 6  # the three networks' first rung, two seeds each, went to the pool
    assert pooled[0] == alone[0] and pooled[2] == alone[2]
    columns = ["strategy", "epochs", "cut_in_race", "validation_accuracy", "race_score", "images_seen"]
    pd.testing.assert_frame_equal(pooled[1][columns], alone[1][columns])
