"""`fit` under torchrun with 1 and 2 processes (DistributedDataParallel; gloo on CPU, nccl on CUDA).

The same global batch, data and epochs for every process count; on CPU the cores are shared out
(each process gets cores / processes threads), so the ratio says what splitting one machine's
cores across processes gains or costs. Each count is launched `--repeats` times; the best kept.

    .venv/bin/python benchmarks/distributed_training.py
    .venv/bin/python benchmarks/distributed_training.py --processes 1 2 4 --images 16384
    .venv/bin/python benchmarks/distributed_training.py --smoke   # 2 processes, 128 images, once: checks it runs
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def worker(images: int, epochs: int, batch_size: int) -> None:
    """One process of the torchrun: train, and let rank 0 print the seconds of `fit` alone."""
    import torch

    from headstart.ml import distributed
    from headstart.ml.models import build_model
    from headstart.ml.training import TrainConfig, fit

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // distributed.world_size()))
    generator = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (images, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.arange(images) % 10
    torch.manual_seed(0)
    model = build_model({"name": "small_cnn", "in_channels": 1, "num_classes": 10, "widths": [32, 64, 128]})
    config = TrainConfig(epochs=epochs, batch_size=batch_size, progress=False)
    started = time.perf_counter()
    fit(model, (data, labels), (data[:256], labels[:256]), config)
    if distributed.is_main_process():
        print(f"SECONDS {time.perf_counter() - started:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="2 processes, 128 images, once: checks it runs")
    args = parser.parse_args()
    if args.smoke:
        args.processes, args.images, args.epochs, args.batch_size, args.repeats = [2], 128, 1, 32, 1
    if args.worker:
        worker(args.images, args.epochs, args.batch_size)
        return
    seconds = {}
    for count in args.processes:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={count}"]
        command += [__file__, "--worker", f"--images={args.images}", f"--epochs={args.epochs}"]
        command += [f"--batch-size={args.batch_size}"]
        runs = []
        for _ in range(args.repeats):
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            runs.append(float(next(line.split()[1] for line in output.splitlines() if line.startswith("SECONDS"))))
        seconds[count] = min(runs)
    print(
        f"small_cnn, {args.images} images 28x28, global batch {args.batch_size}, {args.epochs} epochs, "
        f"{os.cpu_count()} CPU cores; best of {args.repeats}"
    )
    print(f"| {'processes':>9} | {'seconds':>8} | {'images/s':>9} | {'ratio to 1 process':>18} |")
    print(f"|{'-' * 11}|{'-' * 10}|{'-' * 11}|{'-' * 20}|")
    for count, value in seconds.items():
        ratio = seconds[args.processes[0]] / value
        print(f"| {count:>9} | {value:>8.2f} | {args.epochs * args.images / value:>9.0f} | {ratio:>18.2f} |")


if __name__ == "__main__":
    main()
