"""Training throughput (images/s) of headstart's `fit` against a minimal hand-written PyTorch loop.

Same model, data, batch size, optimizer and device, measured in one process, each loop timed
`--repeats` times after a warm-up, best time kept. `fit` does more per epoch (validation,
best-state copy, early-stopping bookkeeping); the ratio says what that costs.

    .venv/bin/python benchmarks/training_throughput.py            # CPU here, CUDA when present
    .venv/bin/python benchmarks/training_throughput.py --architecture resnet18 --images 8192
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from headstart.ml.models import build_model
from headstart.ml.training import TrainConfig, fit, resolve_device, scale_images


def minimal_loop(model, images, labels, epochs: int, batch_size: int, lr: float) -> None:
    """What a practitioner writes by hand: shuffle, forward, loss, backward, step."""
    device = images.device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), device=device)
        for start in range(0, len(images), batch_size):
            batch = order[start : start + batch_size]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = F.cross_entropy(model(scale_images(images[batch])).float(), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def timed(run, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="small_cnn")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    device = resolve_device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 1, args.size, args.size), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    validation = (images[:256], labels[:256])
    config = {"name": args.architecture, "in_channels": 1, "num_classes": 10}

    def fresh_model():
        torch.manual_seed(0)
        return build_model(config).to(device)

    on_device = images.to(device), labels.to(device)
    loops = {
        "minimal PyTorch loop": lambda: minimal_loop(fresh_model(), *on_device, args.epochs, args.batch_size, 1e-3),
        "headstart fit": lambda: fit(
            fresh_model(),
            (images, labels),
            validation,
            TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=str(device), progress=False),
        ),
    }
    for run in loops.values():  # warm-up: kernels, allocator, autocast caches
        timed(run, device)
    seconds = {name: min(timed(run, device) for _ in range(args.repeats)) for name, run in loops.items()}
    throughput = {name: args.epochs * args.images / s for name, s in seconds.items()}
    baseline = throughput["minimal PyTorch loop"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(
        f"{args.architecture}, {args.images} images {args.size}x{args.size}, batch {args.batch_size}, "
        f"{args.epochs} epochs, device {name}"
    )
    print(f"| {'loop':<22} | {'images/s':>10} | {'ratio to minimal':>16} |")
    print(f"|{'-' * 24}|{'-' * 12}|{'-' * 18}|")
    for loop, value in throughput.items():
        print(f"| {loop:<22} | {value:>10.0f} | {value / baseline:>16.2f} |")


if __name__ == "__main__":
    main()
