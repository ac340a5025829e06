"""headstart's `fit` against a bare PyTorch loop doing the same work, at two shapes, in one process.

Both loops train the same model on the same data with the same batch size, optimizer, augmentation,
memory format (channels-last, fit's default, unless `--no-channels-last`), precision (`--precision`,
auto: bf16 autocast on CUDA and on CPUs with AMX) and device, and both validate
once an epoch (one eval-mode forward pass over the validation images).
`fit` also keeps the best epoch's weights, tracks early stopping, writes checkpoints (at most every
`checkpoint_seconds`) and records the history: the ratio says what that costs. Each loop is run
`--repeats` times, interleaved, after a warm-up; the best time is kept (this machine is shared).

Shapes:
- benchmark: 4096 images, batch 128, 2 epochs, 256 validation images;
- default: the default run's own shape: 100 labelled images (10 per class), batch 32, 40 epochs of at
  least 4 steps, rotation/shift augmentation, 100 validation images, a checkpoint file.

`--smoke`: the default shape's paths (augmentation, a checkpoint) at 64 images and 2 epochs, once: a
check that the script still runs, in seconds; its figures mean nothing.

    .venv/bin/python benchmarks/training_throughput.py            # CPU here, CUDA when present
    .venv/bin/python benchmarks/training_throughput.py --shapes default --repeats 5
    .venv/bin/python benchmarks/training_throughput.py --smoke
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from headstart.ml.models import build_model
from headstart.ml.training import (
    TrainConfig,
    augment_images,
    epoch_order,
    fit,
    predict_logits,
    resolve_device,
    scale_images,
    trains_in_bf16,
)


@dataclass(frozen=True)
class Shape:
    images: int
    validation: int
    config: TrainConfig
    checkpoint: bool


SHAPES = {
    "benchmark": Shape(4096, 256, TrainConfig(epochs=2, batch_size=128, progress=False), checkpoint=False),
    "default": Shape(
        100,
        100,
        TrainConfig(
            epochs=40,
            batch_size=32,
            min_batches_per_epoch=4,
            body_lr=3e-3,
            head_lr=3e-3,
            augment={"max_rotation_deg": 10.0, "max_shift": 0.08},
            progress=False,
        ),
        checkpoint=True,
    ),
}
SMOKE = Shape(
    64,
    32,
    TrainConfig(
        epochs=2,
        batch_size=32,
        min_batches_per_epoch=2,
        augment={"max_rotation_deg": 10.0, "max_shift": 0.08},
        progress=False,
    ),
    checkpoint=True,
)


def bare_loop(model, train, validation, config: TrainConfig) -> None:
    """What a practitioner writes by hand: shuffle, augment, forward, loss, backward, step; then one
    validation pass an epoch."""
    images, labels = train
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.body_lr, weight_decay=config.weight_decay)
    device = images.device
    augment = config.augment.max_rotation_deg > 0 or config.augment.max_shift > 0
    bf16 = trains_in_bf16(config.precision, device)
    for _ in range(config.epochs):
        model.train()
        order = epoch_order(len(images), config, generator).to(device)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            inputs = scale_images(images[batch])
            if augment:
                inputs = augment_images(inputs, generator, config.augment.max_rotation_deg, config.augment.max_shift)
            if config.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(inputs).float(), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            predict_logits(model, validation[0]).argmax(1).eq(validation[1]).float().mean()


def timed(run, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(
    shape: Shape, architecture: str, device: torch.device, repeats: int, channels_last: bool, precision: str
) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (shape.images, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(shape.images) % 10
    validation = torch.randint(0, 256, (shape.validation, 1, 28, 28), dtype=torch.uint8, generator=generator)
    validation_labels = torch.arange(shape.validation) % 10
    model_config = {"name": architecture, "in_channels": 1, "num_classes": 10}
    if architecture == "small_cnn":
        model_config["widths"] = [32, 64, 128]  # the default source model
    config = shape.config.model_copy(
        update={"device": str(device), "patience": None, "channels_last": channels_last, "precision": precision}
    )

    def fresh_model():
        torch.manual_seed(0)
        model_format = torch.channels_last if config.channels_last else torch.preserve_format
        return build_model(model_config).to(device, memory_format=model_format)

    def run_fit(checkpoint: Path | None):
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        fit(fresh_model(), (images, labels), (validation, validation_labels), config, checkpoint)

    on_device = (images.to(device), labels.to(device)), (validation.to(device), validation_labels.to(device))
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "fit.pt" if shape.checkpoint else None
        loops = {
            "bare loop": lambda: bare_loop(fresh_model(), *on_device, config),
            "headstart fit": lambda: run_fit(checkpoint),
        }
        for run in loops.values():  # warm-up: kernels, allocator, autocast caches
            timed(run, device)
        seconds = {name: [] for name in loops}
        for _ in range(repeats):  # interleaved, so a burst of load on the machine hits both
            for name, run in loops.items():
                seconds[name].append(timed(run, device))
    return {name: min(values) for name, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="small_cnn")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--smoke", action="store_true", help="a tiny shape, once: checks the script runs")
    args = parser.parse_args()
    shapes = {"smoke": SMOKE} if args.smoke else {name: SHAPES[name] for name in args.shapes}
    repeats = 1 if args.smoke else args.repeats
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    memory_format = "channels-last" if args.channels_last else "contiguous (NCHW)"
    precision = "bf16 autocast" if trains_in_bf16(args.precision, device) else "fp32"
    print(
        f"{args.architecture}, {memory_format}, {precision}, on {name}; "
        f"best of {repeats} interleaved runs after a warm-up"
    )
    print(f"| {'shape':<9} | {'loop':<14} | {'seconds':>8} | {'images/s':>9} | {'ratio to bare':>13} |")
    print(f"|{'-' * 11}|{'-' * 16}|{'-' * 10}|{'-' * 11}|{'-' * 15}|")
    for shape_name, shape in shapes.items():
        seconds = measure(shape, args.architecture, device, repeats, args.channels_last, args.precision)
        per_epoch = max(shape.images, (shape.config.min_batches_per_epoch or 0) * shape.config.batch_size)
        trained = shape.config.epochs * per_epoch  # training images passed, both loops alike
        for loop, value in seconds.items():
            ratio = seconds["bare loop"] / value
            print(f"| {shape_name:<9} | {loop:<14} | {value:>8.2f} | {trained / value:>9.0f} | {ratio:>13.2f} |")


if __name__ == "__main__":
    main()
