"""Typed parameters. Kedro validates `params:` node inputs against these models before any node runs,
so a wrong type, range or unknown key stops `kedro run` with a message naming the field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SerializeAsAny, field_validator, model_validator

from headstart import configured
from headstart.ml import cost
from headstart.ml.advice import SCORES, SizeSimilarityRule
from headstart.ml.comparison import StrategyTrainer
from headstart.ml.config import ExecutionParams, Settings, TrainConfig, TrainingParams
from headstart.ml.data.natural_patches import NaturalPatchesStyle
from headstart.ml.data.printed import PrintedDigitsStyle
from headstart.ml.data.shifts import DomainShift
from headstart.ml.looks import LookDesign
from headstart.ml.metrics import baseline_order
from headstart.ml.models import LIBRARIES, check_model_name, library_of
from headstart.ml.models.stored import StoredModel
from headstart.ml.ood import DEFAULT_SCORE as DEFAULT_OOD_SCORE
from headstart.ml.ood import SCORES as OOD_SCORES
from headstart.ml.pretraining import SourceRecipe
from headstart.ml.strategies import Knobs, Strategy, StrategyConfig, TargetTask, strategy_of
from headstart.ml.strategies.base import STRATEGY_MODELS
from headstart.ml.studies import SweepArm
from headstart.ml.transfer import TransferSpec

# A path in conf; relative paths are resolved against the project root, whatever the working directory.
ProjectPath = Annotated[str, AfterValidator(configured.resolve)]


class ImageParams(Settings):
    """The model's input form; every source and target is converted to it."""

    size: int = Field(28, ge=8, le=512)
    channels: Literal[1, 3] = 1


class PrintedDigitsParams(PrintedDigitsStyle):
    """The printed-digits source: the renderer's own style settings, a count and a seed; `task` picks
    the label a target of this kind is classified by (its character by default, or font_family, ...)."""

    kind: Literal["printed_digits"]
    count: int = Field(10000, ge=20)
    seed: int = 0
    task: Literal["character", "font_family", "bold", "italic"] = "character"


class HandwrittenDigitsParams(Settings):
    kind: Literal["handwritten_digits"]


class TorchvisionParams(Settings):
    kind: Literal["torchvision"]
    name: str
    split: str = "train"
    test_split: str | None = None
    root: ProjectPath = "data/01_raw/torchvision"
    download: bool = True
    limit: int | None = Field(None, ge=1)


class ImageFolderParams(Settings):
    kind: Literal["image_folder"]
    root: ProjectPath
    test_root: ProjectPath | None = None
    classes: list[str] | None = None
    # Images without labels (any layout below it): unlabelled target images for the strategies that use them
    unlabelled_root: ProjectPath | None = None
    # Keep the images on disk, decoded per batch by DataLoader workers (a folder larger than memory);
    # auto: when decoded at the ingest size they would take more than stream_above_gib
    stream: bool | Literal["auto"] = "auto"
    stream_above_gib: float = Field(4.0, gt=0)

    def stream_setting(self) -> bool | None:
        return None if self.stream == "auto" else self.stream


class NaturalPatchesParams(NaturalPatchesStyle):
    """Colour patches of the photographs scikit-learn and matplotlib install, labelled by `task`: a far target."""

    kind: Literal["natural_patches"]


DataSourceParams = Annotated[
    PrintedDigitsParams | HandwrittenDigitsParams | TorchvisionParams | ImageFolderParams | NaturalPatchesParams,
    Field(discriminator="kind"),
]


class SplitParams(Settings):
    seed: int = 0
    source_validation_fraction: float = Field(0.1, gt=0, lt=1)
    target_validation_fraction: float = Field(0.2, gt=0, lt=1)
    target_test_fraction: float = Field(0.3, gt=0, lt=1)
    labels_per_class: Annotated[int, Field(ge=1)] | Literal["all"] = 10
    # Validation labels drawn from the validation split, counted in the budget: "same" as
    # labels_per_class (a user with k labels per class does not also have 25 more to validate on),
    # a number, or "all" (the whole validation split).
    validation_labels_per_class: Annotated[int, Field(ge=1)] | Literal["same", "all"] = "same"


class IngestParams(Settings):
    image: ImageParams = ImageParams()
    source: DataSourceParams
    target: DataSourceParams
    target_shift: DomainShift = DomainShift()  # the target's images shifted away from the source's (the task suite)
    split: SplitParams = SplitParams()
    samples_per_grid: int = Field(20, ge=1, le=100)


# --- Training, pretraining and transfer --------------------------------------------------------


class LocalClusterParams(Settings):
    """A Dask LocalCluster on this machine: `local` worker processes of one thread each."""

    local: int = Field(ge=1)


class RuntimeParams(ExecutionParams):
    """Where and how every training pipeline runs."""

    checkpoint_dir: ProjectPath = "data/06_models/checkpoints"  # checkpoints a killed run resumes from
    # Processes for a study's independent trainings (learning-curve points); auto: one per CPU core on
    # the CPU, one on an accelerator
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # Stop before any training when the run's cost estimate (headstart.ml.cost) exceeds this; null: no limit
    time_budget_minutes: float | None = Field(None, gt=0)
    # The trainings on a Dask cluster (headstart.ml.cluster, docs/operations/cluster.md): a scheduler's address
    # (tcp://host:8786) or {local: N}, N processes of one thread here; null: `workers` processes here
    cluster: str | LocalClusterParams | None = None

    @field_validator("cluster", mode="before")
    @classmethod
    def _a_cluster(cls, value: Any) -> Any:
        address = isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9+]*://[^\s/]+", value)
        local = isinstance(value, dict) and set(value) == {"local"} and value["local"]
        if value is None or address or isinstance(value, LocalClusterParams) or type(local) is int and local >= 1:
            return value
        raise ValueError(f"a scheduler's address such as tcp://host:8786, or {{local: N}} with N ≥ 1, not {value!r}")


class ArchitectureParams(Settings):
    """A backbone from the one registry: headstart's small CNN, any torchvision classifier or any timm
    model, by name; `library` only where a name is in both (e.g. resnet18: torchvision's by default)."""

    library: Literal[LIBRARIES] | None = None  # null: headstart's, else torchvision's, else timm's
    name: str = "small_cnn"
    widths: list[Annotated[int, Field(ge=1)]] | None = None  # small_cnn: channels per block (default 32, 64, 128)
    # torchvision and timm models: the side they see (inputs are resized inside the model, ViTs are built
    # for it); null: the model's own data config (224 for most)
    input_size: int | None = Field(None, ge=8)

    @model_validator(mode="after")
    def _fits_the_architecture(self) -> ArchitectureParams:
        library = self.library or library_of(self.name)
        if library == "headstart" and self.name != "small_cnn":
            raise ValueError(f"headstart's backbone is small_cnn, not {self.name}")
        check_model_name(library, self.name)
        if self.widths is not None and self.name != "small_cnn":
            raise ValueError(f"widths applies to small_cnn only, not {self.name}")
        if self.input_size is not None and self.name == "small_cnn":
            raise ValueError("input_size applies to torchvision and timm models only")
        return self

    def to_config(self, in_channels: int, num_classes: int) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, "in_channels": in_channels, "num_classes": num_classes}
        if self.library is not None:
            config["library"] = self.library
        if self.widths is not None:
            config["widths"] = list(self.widths)
        if self.input_size is not None:
            config["input_size"] = self.input_size
        return config


class PretrainParams(Settings):
    """The source model: trained on the source data (`init: train`, nanoGPT's init_from=scratch),
    or loaded from a torchvision weights enum or a local checkpoint."""

    init: Literal["train", "torchvision_weights", "checkpoint"] = "train"
    retrain: bool = False  # train anew even when the catalog holds a model made from the same data and params
    architecture: ArchitectureParams = ArchitectureParams()
    weights: str | None = None  # init: torchvision_weights, e.g. ResNet18_Weights.IMAGENET1K_V1
    checkpoint: ProjectPath | None = None  # init: checkpoint, a .safetensors file or a state dict
    seed: int = 0
    training: TrainingParams = TrainingParams()

    def recipe(self, runtime: RuntimeParams) -> SourceRecipe:
        """How a trained source model is made, for the library (which knows nothing of these classes)."""
        return SourceRecipe(
            settings=self.model_dump(mode="json", exclude={"retrain"}),
            architecture=self.architecture.to_config,
            training=TrainConfig.of(self.training, runtime, self.seed),
            seed=self.seed,
            checkpoint_dir=Path(runtime.checkpoint_dir),
        )

    @property
    def origin(self) -> str | None:
        """Where loaded weights come from: the torchvision weights enum or the local file."""
        return self.weights or self.checkpoint

    @model_validator(mode="after")
    def _names_its_weights(self) -> PretrainParams:
        if self.init == "torchvision_weights" and not self.weights:
            raise ValueError("init: torchvision_weights needs `weights`, e.g. ResNet18_Weights.IMAGENET1K_V1")
        if self.init == "checkpoint" and not self.checkpoint:
            raise ValueError("init: checkpoint needs `checkpoint`, the path of a .safetensors or state-dict file")
        return self


class CandidateParams(Settings):
    """One candidate source model for `advise`: made by the pretrain code from `pretrain`'s
    parameters with these changes, so the candidates differ in how useful they should be."""

    # random: the architecture at its seeded initialisation; pretrained: the source model as `pretrain`
    # makes it (loaded from its weights file or enum, or trained as `train` would)
    init: Literal["train", "random", "pretrained"] = "train"
    task: str | None = None  # the source task to train on (e.g. font_family); null: the primary one (digit)
    epochs: int | None = Field(None, ge=1)  # null: pretrain.training.epochs

    def is_source_model(self, pretrain: PretrainParams) -> bool:
        """Is this candidate the source model `pretrain` makes (the one a strategy without `source` uses)?"""
        if pretrain.init != "train":
            return self.init == "pretrained"
        return self.init == "train" and self.task is None and self.epochs in (None, pretrain.training.epochs)

    def pretrain_params(self, pretrain: PretrainParams) -> PretrainParams:
        """`pretrain` as this candidate changes it (always trained from the source data)."""
        training = pretrain.training.model_copy(update={"epochs": self.epochs or pretrain.training.epochs})
        return pretrain.model_copy(update={"init": "train", "training": training})


class StrategyRaceParams(Settings):
    """The advice's race on validation (headstart.ml.strategies.race): these strategies of
    transfer.strategies, each from its own source and at its own depth (a strategy's `source` and
    `freeze_blocks`: list variants to race sources and depths), the prior's choice first."""

    strategies: list[str] = Field(
        [
            *("scratch", "pixels_logistic", "pixels_knn", "feature_svm", "finetune_top", "finetune_full", "lp_ft"),
            *("l2_sp", "finetune_top_font_family", "finetune_top_one_epoch", "finetune_from_block_2"),
        ],
        min_length=1,
    )
    seeds: list[int] = Field([0, 1], min_length=1)
    # of each network strategy's epochs (min_epochs and patience alike). 1: the whole budget, raced by
    # successive halving with rungs no earlier than min_epochs, as the comparison races a grid; ¼ judged
    # networks before the floor below which the comparison judges none (the suite's first audit).
    budget_share: float = Field(1.0, gt=0, le=1)
    eta: int = Field(3, ge=2)  # successive halving among the network strategies
    # No rung before this share of a network's epochs (nor before its min_epochs): strategies converge at
    # different speeds, so an early rung judges speed, not the end. At 224 px with min_epochs 0 a rung at
    # epoch 3 of 9 cut `scratch` at 0.14 validation accuracy; the comparison then measured it best (0.96).
    first_rung_share: float = Field(0.5, ge=0, le=1)
    # `middle`: each network at the middle of its tuning grid; `grid`: each setting of its grid a candidate
    # of the halving (as Quick-Tune races settings), about len(grid) times the networks' first rung.
    settings: Literal["middle", "grid"] = "middle"
    # A finishing network's race score: its validation accuracy over its last epochs (mean over them and
    # the seeds), not its best epoch (picked on the same images: 4-5 points above test on the suite).
    settled_epochs: int = Field(5, ge=1)


class AdviseParams(Settings):
    candidates: dict[str, CandidateParams] = Field(min_length=1)
    race: StrategyRaceParams = StrategyRaceParams()
    # The candidates are ranked by each score; the recommendation is made for the first by this one.
    ranking_score: Literal[SCORES] = "knn_accuracy"
    neighbours: int = Field(5, ge=1)  # k of the k-NN accuracy
    folds: int = Field(5, ge=2)  # cross-validation folds (k-NN accuracy, proxy A-distance); fewer if a class is rarer
    domain_images: int = Field(500, ge=10)  # source and target images each, for the domain measures
    seed: int = 0
    rule: SizeSimilarityRule = SizeSimilarityRule()
    # How a user acts on a transferability score alone (You et al. 2021 rank models by LogME, then
    # fine-tune the first): this strategy from the score's first-ranked source, where transfer.strategies
    # has that variant (the suite audits LogME's pick so).
    score_pick_strategy: str = "finetune_top"

    def source_model_candidate(self, pretrain: PretrainParams) -> str | None:
        """The candidate that is the pretrained source model itself, if one is (the first such)."""
        return next((name for name, c in self.candidates.items() if c.is_source_model(pretrain)), None)


class SuiteTaskParams(Settings):
    """One target task of the suite: what it is, and how its run's parameters differ from the project's
    (merged into them as runtime parameters, e.g. {ingest: {split: {labels_per_class: 1}}})."""

    about: str
    overrides: dict[str, Any] = {}
    # far: a target of another kind than the source's characters (natural patches); the audit reports it apart
    domain: Literal["near", "far"] = "near"


class SuiteParams(Settings):
    """`kedro suite`: each task's comparison and advice (`pipelines`), then the suite report."""

    tasks: dict[str, SuiteTaskParams] = Field(min_length=1)
    run: list[str] | None = None  # the tasks run and reported; null: all (`kedro suite --tasks` overrides)
    pipelines: list[str] = ["ingest", "pretrain", "transfer", "advise"]
    # task runs at once, their trainings on one shared pool of workers (headstart.suite_grid)
    concurrent_tasks: int = Field(2, ge=1)
    rerun: bool = False  # train a task again although it finished before with the same parameters

    @model_validator(mode="after")
    def _runs_known_tasks(self) -> SuiteParams:
        unknown = [name for name in self.run or [] if name not in self.tasks]
        if unknown:
            raise ValueError(f"run: {', '.join(unknown)} not in suite.tasks")
        return self

    def chosen(self) -> list[str]:
        return list(self.run or self.tasks)


class AdviceAuditParams(Settings):
    """What the audit trains to measure each candidate source: two strategies of transfer.strategies,
    with their own parameters, on the default target labels and transfer.seeds."""

    finetune_strategy: str = "finetune_top"
    probe_strategy: str = "feature_svm"
    lr_scales: list[Annotated[float, Field(gt=0)]] = Field([1.0], min_length=1)  # their tuning grid
    block_candidate: str = "printed_digits"  # the candidate whose per-block scores meet the layer sweep


class StrategyParams(TransferSpec):
    """One transfer strategy as conf writes it: the registered strategy that trains it (`procedure`, or an
    objective strategy trained by `fit`: `adaptation: {kind: <name>, weight: [grid], ...}`), what it takes
    from the source (TransferSpec's fields), how it trains, its tuning grid and its own knobs, declared in
    its file under headstart.ml.strategies and validated there. `model: pixels` makes a classical
    reference on the raw pixels instead (nothing from the source)."""

    procedure: str = "fit"
    adaptation: str | None = None  # an objective strategy's name (conf: `adaptation: {kind: ..., its knobs}`)
    model: Literal[STRATEGY_MODELS] = "source"
    training: TrainingParams = TrainingParams()
    # The tuning grid of the networks and linear classifiers: multipliers of the learning rates (of C for
    # a linear classifier); null: the grid of `transfer.lr_scales`. A strategy may tune its own knob
    # instead or besides (nearest_neighbours' neighbours, tradaboost's boosting_rounds, an objective's weight).
    lr_scales: list[Annotated[float, Field(gt=0)]] | None = Field(None, min_length=1)
    # An advise candidate's name: the strategy starts from that candidate source model (data set
    # source_candidates, made by `kedro run --pipelines=advise`) instead of the pretrained source model,
    # so one comparison (and the advice's race) can weigh sources. null: the pretrained source model.
    source: str | None = None
    knobs: SerializeAsAny[Knobs] = Knobs()  # the strategy's own keys, validated by its Knobs class

    @model_validator(mode="before")
    @classmethod
    def _strategy_knobs(cls, data: Any) -> Any:
        """The keys a strategy declares itself (top-level, or beside `kind` under `adaptation`), validated
        by that strategy's Knobs: an unknown key is an error naming the strategy and the key."""
        if not isinstance(data, dict) or isinstance(data.get("knobs"), Knobs):
            return data
        data = dict(data)
        given = dict(data.pop("knobs", None) or {})
        if isinstance(data.get("adaptation"), dict):
            objective = dict(data["adaptation"])
            data["adaptation"] = objective.pop("kind", None)
            given |= objective
        given |= {key: data.pop(key) for key in list(data) if key not in cls.model_fields}
        name = data.get("adaptation") or data.get("procedure", "fit")
        data["knobs"] = strategy_of(name, data.get("model", "source")).knobs(given)
        return data

    @property
    def strategy(self) -> Strategy:
        return strategy_of(self.adaptation or self.procedure, self.model)

    @property
    def spec(self) -> TransferSpec:
        """What it takes from the source, as the library's TransferSpec."""
        return TransferSpec.model_validate(self.model_dump(include=set(TransferSpec.model_fields)))

    @model_validator(mode="after")
    def _fits_its_model(self) -> StrategyParams:
        takes_nothing = "source" not in self.strategy.models or (self.copy_blocks == 0 and not self.copy_modules)
        if self.source is not None and takes_nothing:
            raise ValueError(f"source: {self.source} is named, but this strategy copies nothing from a source")
        self.strategy.check(self.spec, self.model, self.procedure)
        return self

    def tuning_grid(self, default_lr_scales: list[float]) -> list[dict[str, float]]:
        """The candidates tried on validation, each a setting `to_config` takes."""
        return self.strategy.grid(self.knobs, self.lr_scales or default_lr_scales)

    @property
    def uses(self) -> str:
        """What the strategy uses at target time besides the target labels, for the comparison table."""
        if "source" not in self.strategy.models:
            return "raw pixels"
        used = ["source model"] if self.copy_blocks != 0 or self.copy_modules else []
        used += [use for use in self.strategy.uses if use not in used]
        return " + ".join(used) or "target labels only"

    def to_config(self, seed: int, runtime: RuntimeParams, **setting: float) -> StrategyConfig:
        """One candidate of the grid (`setting`: its tuned values); `lr_scale` multiplies every learning
        rate (and C, a linear classifier's counterpart)."""
        lr_scale = setting.get("lr_scale", 1.0)
        probe = self.strategy.earlier_phase(self.knobs)
        return StrategyConfig(
            procedure=self.procedure,
            adaptation=self.adaptation,
            model=self.model,
            spec=self.spec,
            training=TrainConfig.of(self.training, runtime, seed, lr_scale),
            probe=TrainConfig.of(probe, runtime, seed, lr_scale) if probe else None,
            knobs=self.knobs,
            setting=setting,
        )


class PlannedLooksParams(Settings):
    """The planned looks over a comparison's `seeds` (headstart.ml.looks), declared once for the transfer
    and the multi-task comparisons; a row's gain is in the comparison's unit (points of accuracy for
    transfer, percent −Δm for multi-task)."""

    seeds: list[int] = Field([0, 1, 2], min_length=1)  # every row trains once per seed, paired by seed
    confidence: float = Field(0.95, gt=0, lt=1)  # 1 − α: the error α is split over the planned looks
    # Planned looks (headstart.ml.looks): the seeds every row has at each look, taken from `seeds` in order
    # (e.g. [3, 5, 10]); a row whose gain over the best baseline is decided stops, open rows get the next
    # look's seeds. Looks past the seeds listed end at the last one. null: every seed at once, one look.
    looks: list[Annotated[int, Field(ge=2)]] | None = None
    # Whose error α is: each row's over its looks (per_comparison), or all rows' together (family_wise:
    # Bonferroni over the rows compared with the best baseline).
    error_control: Literal["per_comparison", "family_wise"] = "per_comparison"
    # A gain whose whole interval lies within ±this much (the gain's unit) is decided "equivalent"; null: never.
    equivalence_points: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _looks_rise(self) -> PlannedLooksParams:
        if self.looks is not None and self.looks != sorted(set(self.looks)):
            raise ValueError(f"looks: {self.looks} must rise")
        return self

    @property
    def planned_looks(self) -> list[int]:
        """The looks within the seeds listed (a look past them ends at the last seed), or one look at all."""
        within = [n for n in self.looks or [] if n < len(self.seeds)]
        return [*within, len(self.seeds)]

    @property
    def first_look_seeds(self) -> list[int]:
        """The seeds every row trains before any decision."""
        return self.seeds[: self.planned_looks[0]]

    def look_design(self, rows: int) -> LookDesign:
        """The planned looks over `rows` rows compared with the best baseline (one look without `looks`)."""
        return LookDesign(
            tuple(self.planned_looks),
            1 - self.confidence,
            equivalence_points=self.equivalence_points,
            control=self.error_control,
            family=max(1, rows),
        )


class TransferParams(PlannedLooksParams):
    # The same tuning for every strategy, the baseline included: each multiplier of the learning
    # rates (C for a linear classifier) is tried over all seeds, and the one with the best mean
    # validation accuracy is kept. The test split plays no part in the choice.
    lr_scales: list[Annotated[float, Field(gt=0)]] = Field([1.0], min_length=1)
    # Successive halving's η over each strategy's grid (headstart.ml.racing): every candidate trains
    # 1/η^s of the epochs, the best 1/η go on, ...; null: every candidate trains to the end.
    racing_eta: int | None = Field(3, ge=2)
    baseline: str = "scratch"  # the same architecture from random init
    # Classical references on the raw pixels, trained on the same labels, tuned on the same
    # validation labels and seeds; with the baseline they make the rows every gain is read against.
    reference_baselines: list[str] = ["pixels_logistic", "pixels_knn"]
    # The models the catalog stores per strategy: every seed's, or only the seed with the best validation
    # accuracy (a third of the disk with three seeds). Only the kept tuning candidate's seeds are ever stored.
    keep_models: Literal["every_seed", "best_seed"] = "every_seed"
    strategies: dict[str, StrategyParams]
    # Strategies defined above but not run, e.g. tradaboost on a target whose classes are not the source's
    # (a task of the suite); the baselines always run.
    leave_out: list[str] = []

    @model_validator(mode="after")
    def _has_its_baselines(self) -> TransferParams:
        missing = [name for name in self.baselines if name not in self.strategies]
        if missing:
            raise ValueError(
                f"baseline(s) {', '.join(missing)} not among the strategies ({', '.join(self.strategies)})"
            )
        unknown = [name for name in self.leave_out if name not in self.strategies]
        if unknown:
            raise ValueError(f"leave_out: {', '.join(unknown)} not among the strategies (edit leave_out with them)")
        if set(self.leave_out) & set(self.baselines):
            raise ValueError(f"leave_out: {', '.join(set(self.leave_out) & set(self.baselines))} are baselines")
        return self

    def cost_plans(self, runtime: RuntimeParams, train: int, validation: int, test: int) -> list[cost.Plan]:
        """The comparison's trainings as headstart.ml.cost prices them: each compared strategy's grid × seeds."""
        return [
            cost.Plan(
                name,
                tuple(params.to_config(self.seeds[0], runtime, **s) for s in params.tuning_grid(self.lr_scales)),
                len(self.first_look_seeds),
                train,
                validation,
                test,
                required=name in self.baselines,
                racing_eta=self.racing_eta,
            )
            for name, params in self.compared.items()
        ]

    def trainer(self, name: str, source: StoredModel, task: TargetTask, runtime: RuntimeParams) -> StrategyTrainer:
        """Strategy `name` of this comparison, ready to train its grid or its kept setting over seeds."""
        params = self.strategies[name]
        return StrategyTrainer(
            name,
            task,
            params.tuning_grid(self.lr_scales),
            lambda setting, seed: params.to_config(seed, runtime, **setting),
            params.model_dump(mode="json"),
            params.uses,
            Path(runtime.checkpoint_dir),
            self.racing_eta,
        )

    @property
    def compared(self) -> dict[str, StrategyParams]:
        """The strategies this run trains and compares: all but those left out."""
        return {name: params for name, params in self.strategies.items() if name not in self.leave_out}

    @property
    def baselines(self) -> list[str]:
        """Every baseline, in the order a tie of validation accuracy is broken (`metrics.baseline_order`)."""
        return baseline_order(self.baseline, self.reference_baselines)

    @property
    def classical_folds(self) -> dict[str, int]:
        """The classical references (model: pixels) by name, with their cross-validation folds."""
        references = {
            name: params for name, params in self.strategies.items() if "source" not in params.strategy.models
        }
        return {name: params.knobs.folds for name, params in references.items()}


LabelBudget = Annotated[int, Field(ge=1)] | Literal["all"]


class LearningCurveParams(Settings):
    # k training labels per class; as many validation labels per class are drawn from the
    # validation split (`ingest.split.validation_labels_per_class`), and both count as labels used.
    labels_per_class: list[LabelBudget] = Field([1, 2, 5, 10, 20, "all"], min_length=2)
    # strategies by name from transfer.strategies, trained and tuned with their own parameters
    # (the baselines, transfer.baseline and transfer.reference_baselines, always run)
    strategies: list[str] = ["finetune_top", "feature_svm"]
    seeds: list[int] = Field([0, 1, 2], min_length=1)  # each seed draws its own k labels per class and init


class LayerSweepParams(Settings):
    blocks: list[Annotated[int, Field(ge=0)]] | None = None  # n blocks transferred; null: 0 … every block
    # Yosinski et al.'s arms, by name: whether the first n blocks are copied from the source, and frozen.
    arms: dict[str, SweepArm] = {
        "copied_frozen": SweepArm(from_source=True, frozen=True),
        "copied_finetuned": SweepArm(from_source=True, frozen=False),
        "random_frozen": SweepArm(from_source=False, frozen=True),
    }
    labels_per_class: LabelBudget = 10  # and as many validation labels (ingest.split.validation_labels_per_class)
    seeds: list[int] = Field([0, 1, 2], min_length=1)
    training: TrainingParams = TrainingParams()  # one budget and set of rates for every arm and n


# --- Multi-task learning --------------------------------------------------------------------------


class PredictParams(Settings):
    # "champion": the registry's champion (kedro run --pipelines=retrain promotes one); or the name
    # of a strategy in transfer.strategies: its catalogued models, the seed best on validation.
    model: str = "champion"
    # Which out-of-distribution score flags an image (headstart.ml.ood): knn (the default, the best measured
    # on the default data by benchmarks/ood_scores.py), energy or msp. Every score's threshold is stored.
    ood_score: Literal[OOD_SCORES] = DEFAULT_OOD_SCORE
