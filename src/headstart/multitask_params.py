"""Typed parameters of the multi-task pipelines (multitask, multitask_capacity, multitask_labels): the data,
the methods and their weightings, the trunk, the comparison and the sweeps. Kedro validates `params:`
node inputs against these before any node runs, as it does headstart.params's."""

from __future__ import annotations

import itertools
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from headstart.ml import workers
from headstart.ml.config import Settings, TrainingParams
from headstart.ml.models.multitask import SHARING_MODELS
from headstart.ml.multitask import WEIGHTINGS, LossWeighting, WeightingParams, method_config, tunable_knobs
from headstart.ml.multitask.sweeps import SweepRun, equal_weighting_of, single_task_baseline
from headstart.params import ArchitectureParams, PlannedLooksParams, ProjectPath, RuntimeParams


class MultiDigitsParams(Settings):
    """MultiMNIST-style pairs of the target's handwritten digits, drawn within each split. `multi_digits`:
    two tasks, the left and the right digit; `digit_presence`: multi-label, one yes/no label per digit
    class (`has_<class>`: is that digit on the canvas?), each a sigmoid output trained by binary cross-entropy."""

    kind: Literal["multi_digits", "digit_presence"]
    train_pairs: int = Field(2000, ge=10)
    validation_pairs: int = Field(500, ge=10)
    test_pairs: int = Field(1000, ge=10)
    seed: int = 0


class PrintedTasksParams(Settings):
    """The printed-digits source's own tasks: digit, font_family, bold, italic (its validation
    split is halved into validation and test)."""

    kind: Literal["printed_digits_tasks"]
    tasks: list[str] | None = None  # null: every task
    seed: int = 0


class ManifestParams(Settings):
    """A CSV: an image path column (relative to the CSV) and one column per task; empty = missing."""

    kind: Literal["manifest"]
    path: ProjectPath
    image_column: str = "image"
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.3, gt=0, lt=1)
    seed: int = 0


MultitaskDataParams = Annotated[MultiDigitsParams | PrintedTasksParams | ManifestParams, Field(discriminator="kind")]


class MissingLabelsParams(Settings):
    """Hide a fraction of one task's training labels (a real run of the missing-label path)."""

    task: str
    fraction: float = Field(0.3, ge=0, lt=1)
    seed: int = 0


TUNABLE_METHOD_SETTINGS = (*tunable_knobs(), "penalty")  # a method's own grid: its weighting's knobs, or λ


class MultitaskMethodParams(Settings):
    sharing: Literal[tuple(SHARING_MODELS)]
    weighting: WeightingParams = WeightingParams()
    penalty: float = Field(0.0, ge=0)  # soft sharing: λ of Σ‖w_t − w_s‖²
    # its own grid besides the rates' multipliers, e.g. {alpha: [0.5, 1.5, 3.0]} or {penalty: [1e-4, 1e-3]}
    tune: dict[Literal[TUNABLE_METHOD_SETTINGS], list[float]] = {}
    lr_scales: list[float] | None = Field(None, min_length=1)  # null: multitask.lr_scales

    def grid(self, lr_scales: list[float]) -> list[dict[str, float]]:
        """Every candidate: the rates' multiplier × each value of the method's own settings."""
        axes = {"lr_scale": self.lr_scales or lr_scales, **self.tune}
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]

    def weighting_for(self, setting: dict[str, float], tasks: list[str], seed: int) -> LossWeighting:
        return self.weighting.build(tasks, seed, setting)

    def penalty_for(self, setting: dict[str, float]) -> float:
        return setting.get("penalty", self.penalty)

    @model_validator(mode="after")
    def _fits_its_sharing(self) -> MultitaskMethodParams:
        if WEIGHTINGS[self.weighting.kind].needs_shared_parameters and self.sharing != "hard":
            raise ValueError(f"{self.weighting.kind} needs shared parameters: use sharing: hard")
        if (self.penalty or "penalty" in self.tune) and self.sharing != "soft":
            raise ValueError("penalty applies to sharing: soft only")
        return self


class TrunkParams(Settings):
    init: Literal["scratch", "source"] = "scratch"  # source: the catalogued source model's body
    architecture: ArchitectureParams = ArchitectureParams()  # ignored with init: source


def source_trunk(source_config: dict[str, Any]) -> dict[str, Any]:
    """The source model's architecture without its classifier: a trunk for the task heads."""
    return {k: v for k, v in source_config.items() if k not in ("num_classes", "head_hidden")}


class MultitaskParams(PlannedLooksParams):
    data: MultitaskDataParams
    missing_labels: MissingLabelsParams | None = None
    trunk: TrunkParams = TrunkParams()
    head_depth: int = Field(1, ge=1)  # layers per task head
    head_width: int = Field(64, ge=1)
    methods: dict[str, MultitaskMethodParams]
    training: TrainingParams = TrainingParams()
    lr_scales: list[float] = Field([1.0], min_length=1)  # every method's grid of rate multipliers
    racing_eta: int | None = Field(None, ge=2)  # successive halving over each grid; null: every candidate to the end

    @model_validator(mode="after")
    def _has_single_task_baselines(self) -> MultitaskParams:
        baselines = [name for name, method in self.methods.items() if method.sharing == "single_task"]
        if len(baselines) != 1:
            raise ValueError(f"methods need exactly one single_task baseline, found {baselines or 'none'}")
        return self

    @property
    def baseline(self) -> str:
        return single_task_baseline(self.methods)

    @property
    def equal_weighting(self) -> str | None:
        return equal_weighting_of(self.methods)

    def trunk_config(self, source_config: dict[str, Any], in_channels: int) -> dict[str, Any]:
        """The trunk's architecture: the source model's body (`init: source`) or `trunk.architecture`."""
        return source_trunk(source_config) if self.trunk.init == "source" else self.scratch_trunk(in_channels)

    def scratch_trunk(self, in_channels: int) -> dict[str, Any]:
        """`trunk.architecture`'s trunk, whatever `trunk.init` says (the sweeps set the start themselves)."""
        trunk = self.trunk.architecture.to_config(in_channels, 1)
        trunk.pop("num_classes")
        return trunk


class CapacitySweepParams(Settings):
    """The trunk's channels times each multiplier, on the multi-task comparison's own data."""

    width_multipliers: list[Annotated[float, Field(gt=0)]] = Field([0.25, 0.5, 1.0, 2.0, 4.0], min_length=1)


class LabelsTasksSweepParams(Settings):
    """Digit-presence tasks (`has_<digit>` on digit pairs, which share every low-level feature): training
    images (= labels per task) × how many of the ten tasks × the trunk's start (scratch, or the source
    model's body: transfer plus multi-task)."""

    labels_per_task: list[Annotated[int, Field(ge=10)]] = Field([20, 100, 500, 2000], min_length=1)
    tasks: list[Annotated[int, Field(ge=1, le=10)]] = Field([2, 5, 10], min_length=1)
    trunks: list[Literal["scratch", "source"]] = Field(["scratch", "source"], min_length=1)
    validation_pairs: int = Field(200, ge=10)  # at every point: validation labels are part of the budget
    test_pairs: int = Field(1000, ge=10)
    # as many steps an epoch at 20 labels as at 2000 (batches resampled), so the few are not starved
    min_batches_per_epoch: int | None = Field(32, ge=1)
    seed: int = 0


class MultitaskSweepsParams(PlannedLooksParams):
    # by name from multitask.methods (so each is defined once); exactly one single_task among them
    methods: list[str] = Field(["single_task", "hard_equal", "hard_famo"], min_length=2)
    lr_scales: list[float] = Field([1.0], min_length=1)  # each method's grid at every point (raced as multitask's)
    training: TrainingParams | None = None  # null: multitask.training
    capacity: CapacitySweepParams = CapacitySweepParams()
    labels_and_tasks: LabelsTasksSweepParams = LabelsTasksSweepParams()

    def chosen_methods(self, multitask: MultitaskParams) -> dict[str, MultitaskMethodParams]:
        unknown = [name for name in self.methods if name not in multitask.methods]
        if unknown:
            raise ValueError(
                f"multitask_sweeps.methods: {unknown} are not in multitask.methods {list(multitask.methods)}"
            )
        chosen = {name: multitask.methods[name] for name in self.methods}
        if sum(method.sharing == "single_task" for method in chosen.values()) != 1:
            raise ValueError(
                "multitask_sweeps.methods: name exactly one single_task method, the baseline of every point"
            )
        return chosen

    def setup(self, multitask: MultitaskParams, runtime: RuntimeParams, min_batches: int | None = None) -> SweepRun:
        """What every point of a sweep shares (`min_batches`: at least that many batches an epoch)."""
        budget = self.training or multitask.training
        if min_batches is not None:
            budget = budget.model_copy(update={"min_batches_per_epoch": min_batches})
        return SweepRun(
            methods=self.chosen_methods(multitask),
            head={"head_depth": multitask.head_depth, "head_width": multitask.head_width},
            seeds=self.seeds,
            budget=budget,
            config_for=partial(method_config, budget, runtime),
            lr_scales=self.lr_scales,
            racing_eta=multitask.racing_eta,
            checkpoint_dir=Path(runtime.checkpoint_dir),
            device=runtime.device,
            design=self.look_design(len(self.methods) - 1),
            processes=workers.for_runtime(runtime).count,
            cluster=runtime.cluster,
            budget_minutes=runtime.time_budget_minutes,
        )

    def trunks(
        self, multitask: MultitaskParams, source: Any, in_channels: int
    ) -> dict[str, tuple[dict[str, Any], dict | None]]:
        """labels_and_tasks.trunks as (trunk config, weights to copy): multitask.trunk.architecture from
        scratch, or the source model's (a `StoredModel`) body with its weights."""
        made = {
            "scratch": lambda: (multitask.scratch_trunk(in_channels), None),
            "source": lambda: (source_trunk(source.config), source.state),
        }
        return {name: made[name]() for name in self.labels_and_tasks.trunks}
