"""Seeds of one candidate trained one after another against as one stack (headstart.ml.stacked_seeds).

The default comparison's `scratch` shape: headstart's CNN (widths 32, 64, 128) from random init on
100 28-px grey images (10 classes), batch 32, 4 steps an epoch, augmentation on, `--epochs` epochs
and no early stop, for `--seeds` seeds. Prints the seconds of each way and their ratio, measured in
one run, and checks that the kept weights agree.

`--smoke` checks that the script still runs: 2 seeds, 1 epoch.

    .venv/bin/python benchmarks/stacked_seeds.py --seeds 10 --epochs 10
    .venv/bin/python benchmarks/stacked_seeds.py --smoke
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from headstart.ml.models import build_model
from headstart.ml.stacked_seeds import fit_seeds_together
from headstart.ml.training import TrainConfig, fit


def models(seeds: list[int]) -> list[torch.nn.Module]:
    built = []
    for seed in seeds:
        torch.manual_seed(seed)
        built.append(build_model({"name": "small_cnn", "in_channels": 1, "num_classes": 10, "widths": [32, 64, 128]}))
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="2 seeds, 1 epoch: checks it runs")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.epochs = 2, 1
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (200, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(200) % 10
    train, validation = (images[:100], labels[:100]), (images[100:], labels[100:])
    seeds = list(range(args.seeds))
    configs = [
        TrainConfig(
            epochs=args.epochs,
            batch_size=32,
            min_batches_per_epoch=4,
            body_lr=3e-3,
            head_lr=3e-3,
            augment={"max_rotation_deg": 10.0, "max_shift": 0.08},
            progress=False,
            device="cpu",
            channels_last=False,
            seed=seed,
        )
        for seed in seeds
    ]
    alone_models, stacked_models = models(seeds), models(seeds)
    started = time.perf_counter()
    alone_results = [fit(model, train, validation, config) for model, config in zip(alone_models, configs)]
    alone = time.perf_counter() - started
    started = time.perf_counter()
    stacked_results = fit_seeds_together(stacked_models, train, validation, configs)
    stacked = time.perf_counter() - started
    gap = max(
        (a - b).abs().max().item()
        for x, y in zip(alone_models, stacked_models)
        for a, b in zip(x.state_dict().values(), y.state_dict().values())
        if a.is_floating_point()
    )
    table = pd.DataFrame(
        [
            {"way": "one seed after another", "seeds": args.seeds, "epochs": args.epochs, "seconds": round(alone, 2)},
            {"way": "one stack (vmap)", "seeds": args.seeds, "epochs": args.epochs, "seconds": round(stacked, 2)},
        ]
    )
    table["× faster"] = (alone / table["seconds"]).round(2)
    print(table.to_markdown(index=False))
    print(f"largest difference of a kept weight or statistic, stack vs alone: {gap:.2e}")
    same_epoch = sum(a.best_epoch == b.best_epoch for a, b in zip(alone_results, stacked_results))
    last_loss = max(
        abs(a.history[-1]["train_loss"] - b.history[-1]["train_loss"]) for a, b in zip(alone_results, stacked_results)
    )
    print(f"seeds keeping the same epoch: {same_epoch} of {args.seeds}; last-epoch train loss gap {last_loss:.2e}")


if __name__ == "__main__":
    main()
