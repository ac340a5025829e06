"""Copy layers from a source model, freeze some (batch-norm statistics included), group parameters.

Copies are name- and shape-checked (as nanoGPT's `from_pretrained` asserts every shape) and
reported tensor by tensor; a checkpoint that does not fit fails with every mismatched name and shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class CheckpointMismatchError(ValueError):
    """The source weights do not fit the architecture they are copied into."""


@dataclass
class TransferReport:
    copied: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # source tensor → why it was not used
    trainable_parameters: int = 0
    frozen_parameters: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def block_prefixes(count: int) -> list[str]:
    """State-dict prefixes of the first `count` body blocks."""
    return [f"blocks.{index}." for index in range(count)]


def copy_weights(model: nn.Module, source_state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> TransferReport:
    """Copy every source tensor whose name starts with one of `prefixes`; the rest keep their fresh init."""
    prefixes = tuple(prefixes)
    target_state = model.state_dict()
    report = TransferReport()
    mismatches = []
    for name, tensor in target_state.items():
        if not name.startswith(prefixes):
            report.reinitialised.append(name)
        elif name not in source_state:
            mismatches.append(f"{name}: missing from the source")
        elif source_state[name].shape != tensor.shape:
            mismatches.append(f"{name}: source {tuple(source_state[name].shape)} vs model {tuple(tensor.shape)}")
        else:
            report.copied.append(name)
    if mismatches:
        raise CheckpointMismatchError("source weights do not fit the model:\n  " + "\n  ".join(mismatches))
    for name in source_state:
        if name not in target_state:
            report.skipped[name] = "not in the model"
        elif name not in report.copied:
            report.skipped[name] = "not selected for transfer"
    with torch.no_grad():
        for name in report.copied:
            target_state[name].copy_(source_state[name])
    return report


def freeze(model: nn.Module, prefixes: Iterable[str]) -> None:
    """No gradient for parameters under `prefixes`; `train_mode` keeps their batch norms in eval mode."""
    prefixes = tuple(prefixes)
    for name, parameter in model.named_parameters():
        if name.startswith(prefixes):
            parameter.requires_grad_(False)


def train_mode(model: nn.Module) -> nn.Module:
    """`model.train()`, except batch norms whose parameters are all frozen: their running statistics stay put."""
    model.train()
    for module in model.modules():
        parameters = list(module.parameters(recurse=False))
        if isinstance(module, _BatchNorm) and parameters and not any(p.requires_grad for p in parameters):
            module.eval()
    return model


def count_parameters(model: nn.Module, report: TransferReport | None = None) -> TransferReport:
    report = report or TransferReport()
    report.trainable_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report.frozen_parameters = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return report


def parameter_groups(model: nn.Module, body_lr: float, head_lr: float, head_prefix: str = "head.") -> list[dict]:
    """Optimizer groups of trainable parameters only: the body at `body_lr`, the head at `head_lr`."""
    body, head = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (head if name.startswith(head_prefix) else body).append(parameter)
    return [group for group in ({"params": body, "lr": body_lr}, {"params": head, "lr": head_lr}) if group["params"]]
