"""Which out-of-distribution score to keep, and what temperature scaling does, on the default data.

The default experiment's inputs (printed-digit source, handwritten-digit target, the base conf's split
and label budget), a source model pretrained as the base conf says, then a few strategies trained as the
comparison trains them (tuned on validation, `--seeds` seeds). Per model: temperature scaling fitted on
the validation labels (headstart.ml.calibration), each score's threshold set to keep 95 % of the
validation images (headstart.ml.ood), and on the test split's digits against three sets a digit
classifier should refuse, all 28-px grey in the target's format (8×8 block counts of a 32×32 bitmap):
printed letters rendered from matplotlib's fonts, drawn shapes (circles, bars, stars, crosses, boxes,
discs), and the test digits inverted. Prints per score and set the AUROC (out-of-distribution positive)
and the share flagged at the stored threshold, means over models; and ECE / NLL before and after.

    .venv/bin/python benchmarks/ood_scores.py                      # scratch, finetune_top, lp_ft; 3 seeds
    .venv/bin/python benchmarks/ood_scores.py --strategies finetune_top --seeds 1
    .venv/bin/python benchmarks/ood_scores.py --smoke              # tiny source, one strategy, 1 seed
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
import yaml

from headstart.ml.calibration import calibration_record, fit_temperature
from headstart.ml.data.images import LabelledImages, block_counts_to_images
from headstart.ml.data.printed import PrintedDigitsConfig, render_printed_digits
from headstart.ml.ood import NEIGHBOURS, SCORES, auroc, drawn_shapes, fit_out_of_distribution, logits_and_features
from headstart.ml.pretraining import train_source_model
from headstart.ml.strategies import target_task
from headstart.ml.workers import Workers
from headstart.params import IngestParams, PretrainParams, RuntimeParams, TransferParams
from headstart.pipelines.ingest.nodes import load_source_images, load_target_images, split_source_and_target

CONF = Path(__file__).resolve().parents[1] / "conf" / "base"
LETTERS = "ACEFHJKLMNPRTUVWXYZ"  # letters that are not digit look-alikes (no B, D, G, I, O, Q, S)


def conf(name: str, key: str) -> dict:
    return yaml.safe_load((CONF / f"parameters_{name}.yml").read_text())[key]


def uci_format(drawn: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """32×32 float drawings → the target's format: binary bitmap, 8×8 counts of 4×4 blocks, resized."""
    counts = F.avg_pool2d((drawn > 0.5).float().unsqueeze(1), 4).squeeze(1) * 16
    return block_counts_to_images(counts, size, channels)


def refused_sets(test: LabelledImages, size: int, channels: int, count: int) -> dict[str, torch.Tensor]:
    letters = render_printed_digits(
        PrintedDigitsConfig(characters=LETTERS, count=count, seed=7, image_size=size, channels=channels)
    )
    return {
        "letters": letters.images,
        "shapes": uci_format(drawn_shapes(count, seed=7), size, channels),
        "inverted digits": 255 - test.images,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["scratch", "finetune_top", "lp_ft"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--neighbours", type=int, default=NEIGHBOURS, help="the k of the k-NN distance")
    parser.add_argument("--smoke", action="store_true", help="200 source images, 1 epoch, finetune_top, 1 seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ingest, pretrain = IngestParams(**conf("ingest", "ingest")), conf("pretrain", "pretrain")
    transfer = conf("transfer", "transfer")
    if args.smoke:
        ingest = ingest.model_copy(update={"source": ingest.source.model_copy(update={"count": 200})})
        pretrain["training"] = {**pretrain["training"], "epochs": 1}
        args.strategies, args.seeds = ["finetune_top"], 1
        for name in args.strategies:
            transfer["strategies"][name]["training"] = {**transfer["strategies"][name]["training"], "epochs": 1}
    started = time.time()
    checkpoints = tempfile.mkdtemp()
    runtime = RuntimeParams(device="cpu", progress=False, workers=1, checkpoint_dir=checkpoints)
    transfer = TransferParams(**transfer)
    (source_train, source_validation, _, train, _, validation, test, _) = split_source_and_target(
        load_source_images(ingest), load_target_images(ingest), ingest
    )
    source, _, _ = train_source_model(source_train, source_validation, PretrainParams(**pretrain).recipe(runtime))
    size, channels = ingest.image.size, ingest.image.channels
    refused = refused_sets(test, size, channels, count=len(test))
    task = target_task(source, train, validation)
    rows, calibration = [], []
    workers = Workers(1)
    try:
        for name in args.strategies:
            trainer = transfer.trainer(name, source, task, runtime)
            tuned = trainer.train(list(range(args.seeds)), workers)
            for seed, stored in trainer.models(tuned, train.primary_classes, size).items():
                model = stored.build().eval()
                val_logits, _ = logits_and_features(model, validation.images, features=False)
                temperature = fit_temperature(val_logits, validation.primary_labels)
                detector = fit_out_of_distribution(
                    model, train.images, validation.images, temperature, neighbours=args.neighbours
                )
                logits, features = logits_and_features(model, test.images)
                record = calibration_record(logits, test.primary_labels, temperature)
                calibration.append(
                    {
                        "strategy": name,
                        "seed": seed,
                        "accuracy": float((logits.argmax(1) == test.primary_labels).float().mean()),
                        "temperature": temperature,
                        "ece": record["ece"],
                        "ece_calibrated": record["ece_calibrated"],
                        "nll": float(F.cross_entropy(logits, test.primary_labels)),
                        "nll_calibrated": record["nll_calibrated"],
                        "aurc": record["aurc"],
                    }
                )
                inside = {score: detector.scores(logits, features, score) for score in SCORES}
                for score in SCORES:
                    rows.append(
                        {
                            "score": score,
                            "set": "digits (test, kept?)",
                            "strategy": name,
                            "auroc": float("nan"),
                            "flagged": float(detector.flags(inside[score], score).double().mean()),
                        }
                    )
                for set_name, images in refused.items():
                    out_logits, out_features = logits_and_features(model, images)
                    for score in SCORES:
                        outside = detector.scores(out_logits, out_features, score)
                        rows.append(
                            {
                                "score": score,
                                "set": set_name,
                                "strategy": name,
                                "auroc": auroc(inside[score], outside),
                                "flagged": float(detector.flags(outside, score).double().mean()),
                            }
                        )
    finally:
        workers.close()
    table = pd.DataFrame(rows)
    summary = table.groupby(["set", "score"], sort=False)[["auroc", "flagged"]].mean().reset_index()
    print(
        f"Out-of-distribution scores (k-NN: k = {args.neighbours}), mean over {len(calibration)} models "
        f"({', '.join(args.strategies)}; "
        f"{len(test)} test digits, {len(refused['letters'])} letters and shapes); flagged at the threshold "
        "keeping 95 % of validation:"
    )
    print(summary.to_markdown(index=False, floatfmt=".3f"))
    print()
    print("Per strategy (AUROC):")
    per = table.dropna().pivot_table(index=["strategy", "score"], columns="set", values="auroc").reset_index()
    print(per.to_markdown(index=False, floatfmt=".3f"))
    print()
    print("Calibration on the test split, before and after temperature scaling (fitted on validation):")
    print(pd.DataFrame(calibration).to_markdown(index=False, floatfmt=".3f"))
    print(f"\n{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
