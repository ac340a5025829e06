"""The classical references against scikit-learn's defaults at a few labels per class.

On the default target split (the UCI handwritten digits at the ingest conf's image size, split by
its seed and fractions), for k labels per class and 5 draws (seeds 0-4, drawn as the learning curve
draws them: k to train from the train pool, as many to validate from the validation split), the
test accuracy of `pixels_logistic` and `pixels_knn` as the library tunes them with the default conf,
beside what a user would get from scikit-learn's defaults on the same images unscaled (uint8):
`LogisticRegression()` and 1-nearest-neighbour, fitted on the k training labels alone, and on the
training + validation labels (the labels the budget pays for either way); and the causes of the
references' old gap, one at a time.

    PYTHONPATH=src .venv/bin/python benchmarks/classical_baselines.py
    PYTHONPATH=src .venv/bin/python benchmarks/classical_baselines.py --labels-per-class 1 2 5 --draws 5
    PYTHONPATH=src .venv/bin/python benchmarks/classical_baselines.py --smoke   # k = 1, one draw: checks it runs
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from headstart.ml.data.handwritten import load_handwritten_digits
from headstart.ml.data.splits import draw_label_budget, split_target
from headstart.ml.strategies import TargetTask
from headstart.ml.studies import tune_and_test
from headstart.ml.training import scale_images
from headstart.params import IngestParams, RuntimeParams, TransferParams
from headstart.pipelines.shared import configure_strategy

CONF = Path(__file__).resolve().parents[1] / "conf" / "base"
STRATEGIES = ("pixels_logistic", "pixels_knn")


def load_conf() -> tuple[IngestParams, TransferParams]:
    ingest = yaml.safe_load((CONF / "parameters_ingest.yml").read_text())["ingest"]
    transfer = yaml.safe_load((CONF / "parameters_transfer.yml").read_text())["transfer"]
    return IngestParams(**ingest), TransferParams(**transfer)


def sklearn_defaults(train, test) -> dict[str, float]:
    """scikit-learn's defaults on the unscaled pixels: what the references must not fall below."""
    (x, y), (x_test, y_test) = ([images.flatten(1).numpy(), labels.numpy()] for images, labels in (train, test))
    return {
        "LogisticRegression()": LogisticRegression().fit(x, y).score(x_test, y_test),
        "1-NN": KNeighborsClassifier(1).fit(x, y).score(x_test, y_test),
    }


def causes(train, validation, test, c_grid: list[float]) -> dict[str, float]:
    """Logistic regression one cause at a time, on pixels in [0, 1] as the library's models see them:
    standardised from the training images (as the references were), C chosen on the validation
    labels (as they were, without the scaler), and C = 1 fitted on training + validation labels."""
    (x, y), (x_val, y_val), (x_test, y_test) = (
        [scale_images(images).flatten(1).numpy(), labels.numpy()] for images, labels in (train, validation, test)
    )
    standardised = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    chosen = max(c_grid, key=lambda c: LogisticRegression(C=c, max_iter=2000).fit(x, y).score(x_val, y_val))
    both = LogisticRegression().fit(np.concatenate([x, x_val]), np.concatenate([y, y_val]))
    return {
        "cause: standardised LogisticRegression(), train": standardised.score(x_test, y_test),
        "cause: LogisticRegression(C chosen on validation), train": LogisticRegression(C=chosen, max_iter=2000)
        .fit(x, y)
        .score(x_test, y_test),
        "cause: LogisticRegression() in [0, 1], train+validation": both.score(x_test, y_test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels-per-class", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="k = 1, one draw: checks it runs")
    args = parser.parse_args()
    if args.smoke:
        args.labels_per_class, args.draws = [1], 1
    ingest, transfer = load_conf()
    split = ingest.split
    target = split_target(
        load_handwritten_digits(ingest.image.size, ingest.image.channels),
        None,
        split.target_validation_fraction,
        split.target_test_fraction,
        split.seed,
    )
    test = target["test"].primary_pairs()
    runtime = RuntimeParams(device="cpu", progress=False)
    grids = {name: transfer.strategies[name].lr_scales or transfer.lr_scales for name in STRATEGIES}
    rows = []
    for k in args.labels_per_class:
        for seed in range(args.draws):
            train, validation = draw_label_budget(
                target["train_pool"], target["validation"], k, split.validation_labels_per_class, seed
            )
            train, validation = train.primary_pairs(), validation.primary_pairs()
            task = TargetTask({}, {}, len(target["test"].primary_classes), train, validation)
            row = {"k": k, "seed": seed}
            for name in STRATEGIES:
                params = transfer.strategies[name]
                grid, configure = params.tuning_grid(transfer.lr_scales), partial(configure_strategy, params, runtime)
                kept, metrics = tune_and_test(task, test, grid, seed, configure)
                row |= {name: metrics["accuracy"], f"{name} tuned": kept.setting_text()}
            row |= {f"{name}, train": value for name, value in sklearn_defaults(train, test).items()}
            joined = [torch.cat(pair) for pair in zip(train, validation)]
            row |= {f"{name}, train+validation": value for name, value in sklearn_defaults(joined, test).items()}
            c_grid = [
                c * transfer.strategies["pixels_logistic"].knobs.regularisation_c for c in grids["pixels_logistic"]
            ]
            row |= causes(train, validation, test, c_grid)
            rows.append(row)
    table = pd.DataFrame(rows)
    print(table.filter(regex="^(?!cause)").to_string(index=False, float_format="%.3f"))
    print()
    columns = [c for c in table.columns if c != "seed" and not c.endswith("tuned")]
    print(f"Test accuracy, mean of {args.draws} draws ({len(test[1])} test images):")
    print(table[columns].groupby("k").mean().T.to_string(float_format="%.3f"))


if __name__ == "__main__":
    main()
