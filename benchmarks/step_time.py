"""One optimizer step of the default source model at the default run's batch, by memory format,
precision and threads: what `runtime.channels_last`, `runtime.precision` and `runtime.workers` buy.

A step is forward (under autocast when bf16), cross-entropy, backward and AdamW, on a batch of 32
28×28 grey images. "workers" rows run that many processes at once, each with its share of the
threads, and report the steps per second of all of them together (the learning curve's set-up).
Every row is timed after a warm-up, in one run of this script; ratios are to the first row.
`--smoke` checks that the script still runs: one process, 2 steps a row after 1 of warm-up.

    .venv/bin/python benchmarks/step_time.py
    .venv/bin/python benchmarks/step_time.py --smoke
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import torch
import torch.nn.functional as F

from headstart.ml.models import build_model
from headstart.ml.training import trains_in_bf16


def steps_per_second(threads: int, channels_last: bool, bf16: bool, steps: int, warmup: int = 10) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model({"name": "small_cnn", "in_channels": 1, "num_classes": 10, "widths": [32, 64, 128]})
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = torch.rand(32, 1, 28, 28).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (32,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(inputs).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - started)


def _worker(arguments: tuple) -> float:
    return steps_per_second(*arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--smoke", action="store_true", help="one process, 2 steps a row: checks it runs")
    args = parser.parse_args()
    steps, warmup = (2, 1) if args.smoke else (args.steps, 10)
    cores = os.cpu_count() or 1
    native_bf16 = trains_in_bf16("auto", torch.device("cpu"))
    print(f"small_cnn, batch 32, on {cores} CPU cores; bf16 native here (AMX): {native_bf16}")
    print(f"| {'processes × threads':<20} | {'memory format':<13} | {'precision':<9} | {'steps/s':>8} | {'ratio':>6} |")
    print(f"|{'-' * 22}|{'-' * 15}|{'-' * 11}|{'-' * 10}|{'-' * 8}|")
    first = None
    for workers in [1] if args.smoke else sorted({1, cores}):
        threads = max(1, cores // workers)
        for channels_last in (False, True):
            for bf16 in (False, True):
                settings = (threads, channels_last, bf16, steps, warmup)
                if workers == 1:
                    rate = steps_per_second(*settings)
                else:
                    with multiprocessing.get_context("spawn").Pool(workers) as pool:
                        rate = sum(pool.map(_worker, [settings] * workers))
                first = first or rate
                layout = "channels-last" if channels_last else "NCHW"
                print(
                    f"| {f'{workers} × {threads}':<20} | {layout:<13} | {'bf16' if bf16 else 'fp32':<9} "
                    f"| {rate:>8.1f} | {rate / first:>6.2f} |"
                )


if __name__ == "__main__":
    main()
