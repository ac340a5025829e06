"""Copy layers from a source model, freeze some (batch-norm statistics included), group parameters.

Copies are name- and shape-checked (as nanoGPT's `from_pretrained` asserts every shape) and
reported tensor by tensor; a checkpoint that does not fit fails with every mismatched name and shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from headstart.ml.config import Settings
from headstart.ml.models import build_model


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


BlockCount = int | Literal["all"]


class TransferSpec(Settings):
    """What the target model takes from the source. Block counts: n first blocks, -n all but the
    last n, "all" the whole body (every module but the head). Module names add to the blocks."""

    copy_blocks: BlockCount = "all"
    copy_modules: tuple[str, ...] = ()  # more modules to copy, by name (e.g. "neck")
    freeze_blocks: BlockCount = 0
    freeze_modules: tuple[str, ...] = ()
    head_hidden: tuple[Annotated[int, Field(ge=1)], ...] = ()  # widths of layers added before the new output layer


def block_count(blocks: BlockCount, total: int) -> int:
    """How many first blocks a count names in a body of `total` blocks ("all", n, or all but the last -n)."""
    return total if blocks == "all" else blocks if blocks >= 0 else total + blocks


def first_block_prefixes(model: nn.Module, count: int) -> list[str]:
    """State-dict prefixes of the first `count` body blocks."""
    return [prefix for block in model.block_prefixes()[:count] for prefix in block]


def body_prefixes(model: nn.Module) -> list[str]:
    return [f"{name}." for name, _ in model.named_children() if name != "head"]


def select_prefixes(
    model: nn.Module, blocks: int | Literal["all"], modules: Sequence[str], field_name: str
) -> list[str]:
    """State-dict prefixes for a block count and module names; an unknown module or count is refused by name."""
    total = len(model.block_prefixes())
    if blocks == "all":
        prefixes = body_prefixes(model)
    else:
        count = block_count(blocks, total)
        if not 0 <= count <= total:
            raise ValueError(f"{field_name}_blocks: {blocks} is outside the model's {total} blocks")
        prefixes = first_block_prefixes(model, count)
    known = dict(model.named_modules())
    for name in modules:
        if name not in known:
            tops = ", ".join(name for name, _ in model.named_children())
            raise ValueError(f"{field_name}_modules: no module '{name}' in the model (top-level modules: {tops})")
        prefixes.append(f"{name}.")
    return prefixes


def _mismatches(
    model_state: Mapping[str, torch.Tensor], source_state: Mapping[str, torch.Tensor], names: Iterable[str]
) -> list[str]:
    found = []
    for name in names:
        if name not in source_state:
            found.append(f"{name}: missing from the source")
        elif source_state[name].shape != model_state[name].shape:
            found.append(f"{name}: source {tuple(source_state[name].shape)} vs model {tuple(model_state[name].shape)}")
    return found


def load_full_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """`load_state_dict(strict=True)`, failing with every missing, unexpected and mis-shaped tensor named."""
    model_state = model.state_dict()
    problems = _mismatches(model_state, state, model_state)
    problems += [f"{name}: not in the model" for name in state if name not in model_state]
    if problems:
        raise CheckpointMismatchError("checkpoint does not fit the architecture:\n  " + "\n  ".join(problems))
    model.load_state_dict(state)


def copy_weights(model: nn.Module, source_state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> TransferReport:
    """Copy every source tensor whose name starts with one of `prefixes`; the rest keep their fresh init."""
    prefixes = tuple(prefixes)
    target_state = model.state_dict()
    report = TransferReport()
    selected = [name for name in target_state if name.startswith(prefixes)]
    report.reinitialised = [name for name in target_state if not name.startswith(prefixes)]
    mismatches = _mismatches(target_state, source_state, selected)
    report.copied = [name for name in selected if name in source_state]
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


# Set on a batch norm whose statistics were never learned (a random layer): frozen or not, its running
# statistics are estimated on the data it sees. Freezing the initial mean 0 / variance 1 of random
# layers shrinks their features tenfold per block and turns a control arm into a broken network.
ESTIMATES_STATISTICS = "estimates_statistics"


def train_mode(model: nn.Module) -> nn.Module:
    """`model.train()`, except batch norms whose parameters are all frozen: their running statistics
    stay put, unless they were never learned (`ESTIMATES_STATISTICS`)."""
    model.train()
    for module in model.modules():
        parameters = list(module.parameters(recurse=False))
        frozen = parameters and not any(p.requires_grad for p in parameters)
        if isinstance(module, _BatchNorm) and frozen and not getattr(module, ESTIMATES_STATISTICS, False):
            module.eval()
    return model


def mark_random_batch_norms(model: nn.Module, copied: Iterable[str]) -> None:
    """Flag every batch norm whose running statistics were not copied from the source."""
    copied = set(copied)
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            setattr(module, ESTIMATES_STATISTICS, f"{name}.running_mean" not in copied)


def count_parameters(model: nn.Module, report: TransferReport | None = None) -> TransferReport:
    report = report or TransferReport()
    report.trainable_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report.frozen_parameters = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return report


def is_head(name: str) -> bool:
    """A parameter of a classifier head: `head.*`, or a multi-task model's `heads.<task>.*` / `<net>.head.*`."""
    return any(part in ("head", "heads") for part in name.split("."))


def block_depths(model: nn.Module) -> dict[str, int]:
    """Each body parameter's block index (general first); a parameter outside every block counts as the last's."""
    blocks = model.block_prefixes()
    depths = {}
    for name, _ in model.named_parameters():
        if not is_head(name):
            depths[name] = next((i for i, block in enumerate(blocks) if name.startswith(block)), len(blocks) - 1)
    return depths


def parameter_groups(
    model: nn.Module, body_lr: float, head_lr: float, weight_decay: float = 0.0, layer_decay: float | None = None
) -> list[dict]:
    """Optimizer groups of trainable parameters only: the body at `body_lr`, the heads at `head_lr`.

    Weight decay applies to weight matrices and kernels only; biases and normalisation scales
    (parameters of one dimension) are not decayed, as torchvision's reference scripts and nanoGPT do.
    With `layer_decay` (layer-wise learning-rate decay, as BEiT and timm's `param_groups_layer_decay`),
    body block i of n trains at body_lr · layer_decay^(n − i): the general early blocks move least.
    """
    depths = block_depths(model) if layer_decay is not None else {}
    blocks = len(model.block_prefixes()) if layer_decay is not None else 0
    groups: dict[tuple[bool, bool, int], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups.setdefault((is_head(name), parameter.ndim >= 2, depths.get(name, blocks)), []).append(parameter)
    return [
        {
            "params": parameters,
            "lr": head_lr if head else body_lr * (layer_decay or 1.0) ** (blocks - depth),
            "weight_decay": weight_decay * decayed,
        }
        # body before head, decayed before not, as before layer decay existed (the optimizer's order)
        for (head, decayed, depth), parameters in sorted(groups.items(), key=lambda i: (i[0][0], not i[0][1], i[0][2]))
    ]


def target_config(source_config: dict[str, Any], num_classes: int, spec: TransferSpec) -> dict[str, Any]:
    """The source architecture with an output layer for the target's classes (and any added layers)."""
    return {**source_config, "num_classes": num_classes, "head_hidden": list(spec.head_hidden)}


def transfer_model(
    source_config: dict[str, Any], source_state: Mapping[str, torch.Tensor], num_classes: int, spec: TransferSpec
) -> tuple[nn.Module, TransferReport]:
    """The source architecture with a fresh head for `num_classes`, the chosen layers copied and frozen."""
    model = build_model(target_config(source_config, num_classes, spec))
    report = copy_weights(model, source_state, select_prefixes(model, spec.copy_blocks, spec.copy_modules, "copy"))
    freeze(model, select_prefixes(model, spec.freeze_blocks, spec.freeze_modules, "freeze"))
    mark_random_batch_norms(model, report.copied)
    return model, count_parameters(model, report)
