"""The multi-task objective: masked per-task losses, the weighting that combines them, and the per-task
measures that validation and the test share.

Missing labels are -1. Each task's loss averages over its labelled entries only; a task with no
labelled entry in a batch contributes nothing (no NaN) under every weighting (REFERENCE.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn

from headstart.ml.data.multitask_sets import YES_NO
from headstart.ml.multitask.weightings import LossWeighting
from headstart.ml.training import CrossEntropyObjective, StepParts, bare_model, predict_logits


def outputs_per_task(classes: dict[str, list[str]]) -> dict[str, int]:
    """A head's outputs per task: one logit for a yes/no label (classes `YES_NO`: multi-label targets,
    sigmoid and binary cross-entropy), else one per class (softmax and cross-entropy)."""
    return {task: 1 if list(names) == YES_NO else len(names) for task, names in classes.items()}


def task_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean loss over the labelled entries (targets ≥ 0): binary cross-entropy on one logit, else cross-entropy."""
    if logits.shape[1] == 1:
        labelled = targets >= 0
        return F.binary_cross_entropy_with_logits(logits[labelled, 0].float(), targets[labelled].float())
    return F.cross_entropy(logits.float(), targets, ignore_index=-1)


def task_predictions(logits: torch.Tensor) -> torch.Tensor:
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def masked_losses(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean loss per task over its labelled entries; tasks without any are left out."""
    losses = {}
    for task, logits in outputs.items():
        if (targets[task] >= 0).any():  # all missing: a mean over nothing would be NaN
            losses[task] = task_loss(logits, targets[task])
    return losses


class _OneTask(nn.Module):
    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, images):
        return self.model(images)[self.task]


def evaluate_multitask(
    model: nn.Module, images: torch.Tensor, labels: dict[str, torch.Tensor], macro_f1: bool = True
) -> dict[str, dict]:
    """Per task: accuracy, macro-F1 (unless `macro_f1=False`), NLL (cross-entropy, binary for a yes/no
    label) and predictions over that task's labelled entries only."""
    results = {}
    for task, task_labels in labels.items():
        labelled = task_labels >= 0
        if not labelled.any():
            continue
        logits = predict_logits(_OneTask(model, task), images[labelled])
        truth = task_labels[labelled].to(logits.device)
        predictions = task_predictions(logits)
        results[task] = {
            "accuracy": float((predictions == truth).float().mean()),
            "nll": float(task_loss(logits, truth)),
            "predictions": predictions.cpu(),
        }
        if macro_f1:
            results[task]["macro_f1"] = float(
                f1_score(truth.cpu(), predictions.cpu(), average="macro", zero_division=0)
            )
    return results


class MultiTaskObjective(CrossEntropyObjective):
    """`fit`'s objective for a multi-task model: weighted masked losses (+ soft sharing's penalty)."""

    def __init__(self, weighting: LossWeighting, penalty: float = 0.0) -> None:
        super().__init__()
        self.weighting, self.penalty = weighting, penalty  # the weighting's parameters move and save with it

    def parameter_groups(self):
        return self.weighting.parameter_groups()

    def loss(self, model, inputs, targets):
        outputs = model(inputs)
        losses = masked_losses(outputs, targets)
        if losses:
            total = self.weighting.combine(losses)
        else:  # no labels for any task in this batch: a zero that keeps the graph, no NaN
            total = sum(logits.float().sum() * 0.0 for logits in outputs.values())
        if self.penalty:
            total = total + self.penalty * bare_model(model).penalty()
        return total, StepParts(outputs, losses)

    def backward(self, model, total, parts):
        self.weighting.backward(model, total, parts.losses) if parts.losses else total.backward()

    def after_step(self, model, inputs, targets):
        def remeasure() -> dict[str, torch.Tensor]:  # the same batch after the step; batch norms' statistics kept
            kept = {name: buffer.clone() for name, buffer in model.named_buffers()}
            losses = masked_losses(model(inputs), targets)
            for name, buffer in model.named_buffers():
                buffer.copy_(kept[name])
            return losses

        self.weighting.after_step(remeasure)

    def correct(self, outputs, targets):
        """Correct predictions and labelled entries over every task, as device tensors (no host sync)."""
        correct = sum((task_predictions(logits) == targets[task]).sum() for task, logits in outputs.items())
        counted = sum((targets[task] >= 0).sum() for task in outputs)
        return correct, counted

    def validate(self, model, images, labels):
        measured = evaluate_multitask(model, images, labels, macro_f1=False)
        record = {
            "validation_loss": sum(m["nll"] for m in measured.values()) / len(measured),
            "validation_accuracy": sum(m["accuracy"] for m in measured.values()) / len(measured),
        }
        for task, m in measured.items():
            record[f"validation_accuracy_{task}"] = m["accuracy"]
            record[f"validation_loss_{task}"] = m["nll"]
        record.update({f"weight_{task}": w for task, w in self.weighting.weights().items()})
        return record
