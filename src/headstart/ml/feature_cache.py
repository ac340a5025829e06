"""Frozen-prefix features, computed once and trained on.

A strategy whose first n blocks are frozen (feature_extractor, finetune_top, LP-FT's probe, the
layer sweep's frozen arms) used to push every image through those same blocks at every step of
every epoch, seed and candidate. Their output is fixed (no trainable parameter, batch norms on the
source's statistics, no dropout), so it is computed once per (frozen weights, images, depth,
precision, view) and kept in this process; training then runs only what follows.

Augmentation: view 0 is the images as they are; views 1 … V−1 each draw the training augmentation
once, with a generator fixed per view (the same for every seed, strategy and candidate, so they share
the cache); every training step picks one view per image with the training's own seeded generator,
where uncached training would have drawn a new rotation and shift. With augmentation off there is
one view, and the cached and uncached paths train the same model, to float tolerance.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from torch import nn

from headstart.ml import distributed
from headstart.ml.fingerprints import fingerprint
from headstart.ml.models.backbone import block_count
from headstart.ml.training import (
    CrossEntropyObjective,
    StepParts,
    TrainResult,
    augment_images,
    fit,
    image_batches,
    resolve_device,
    scale_images,
    trains_in_bf16,
)
from headstart.ml.transfer import ESTIMATES_STATISTICS, is_head

logger = logging.getLogger(__name__)
CACHE_BYTES = 4 * 2**30  # features kept at most; a larger prefix output trains uncached
_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
counted = {"computed": 0, "reused": 0}  # views computed and reused in this process


def _fixed(modules: list[nn.Module]) -> bool:
    """Whether these modules compute the same output in training as in evaluation: no batch norm
    estimating statistics, no dropout or drop-path that is on."""
    for module in modules:
        if getattr(module, ESTIMATES_STATISTICS, False):
            return False
        rate = getattr(module, "p", None) if isinstance(module, nn.modules.dropout._DropoutNd) else None
        rate = getattr(module, "drop_prob", rate)  # timm's DropPath
        if rate:
            return False
    return True


def cache_depth(model: nn.Module) -> int | None:
    """The blocks whose output can be cached: every block when the whole body is frozen (the pooled
    features, for any backbone), else the frozen leading blocks of a model that can run from a block
    (`forward_prefix` / `forward_after`); None when nothing is frozen or the output is not fixed."""
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    blocks = model.block_prefixes()
    if not trainable or distributed.world_size() > 1:  # DDP wraps forward: one process only
        return None
    if all(is_head(name) for name in trainable):
        body = [m for name, m in model.named_modules() if name and not is_head(name)]
        return len(blocks) if _fixed(body) else None
    frozen = 0
    for prefixes in blocks:
        if any(name.startswith(prefixes) for name in trainable):
            break
        frozen += 1
    if not frozen or not hasattr(model, "forward_after"):
        return None
    kept = tuple(prefix for prefixes in blocks[:frozen] for prefix in prefixes)
    prefix_modules = [m for name, m in model.named_modules() if f"{name}.".startswith(kept)]
    return frozen if _fixed(prefix_modules) else None


def prefix_output(model: nn.Module, images: torch.Tensor, depth: int) -> torch.Tensor:
    """The output of the first `depth` blocks for [0, 1] images (all: the pooled features)."""
    if depth == block_count(model):
        return model.forward_features(images)
    return model.forward_prefix(images, depth)


def output_after(model: nn.Module, hidden: torch.Tensor, depth: int) -> torch.Tensor:
    """The logits from the output of the first `depth` blocks."""
    if depth == block_count(model):
        return model.head(hidden)
    return model.forward_after(hidden, depth)


def prefix_views(
    model: nn.Module,
    images,
    depth: int,
    views: int,
    augment: tuple[float, float],
    use_bf16: bool,
    batch_size: int = 256,
) -> tuple[torch.Tensor | None, int]:
    """(N, V, …) float features of `images` after the first `depth` blocks, one per view (None when
    they would not fit the cache), and the images this call pushed through the prefix (0 when reused)."""
    device = next(model.parameters()).device
    frozen = {k: v for k, v in model.state_dict().items() if not is_head(k)}
    key = fingerprint(frozen, images, depth, views, list(augment), use_bf16, device.type)
    if key in _cache:
        _cache.move_to_end(key)
        counted["reused"] += views
        return _cache[key], 0
    was_training = model.training
    model.eval()
    per_view = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
        for view in range(views):
            generator = torch.Generator().manual_seed(view)  # the same views for every seed and strategy
            outputs = []
            for batch in image_batches(images, batch_size):
                inputs = scale_images(batch.to(device))
                if view:
                    inputs = augment_images(inputs, generator, *augment)
                outputs.append(prefix_output(model, inputs, depth).float())
            per_view.append(torch.cat(outputs))
            if view == 0 and per_view[0].element_size() * per_view[0].nelement() * views > CACHE_BYTES:
                model.train(was_training)
                return None, 0
    model.train(was_training)
    features = torch.stack(per_view, dim=1)
    counted["computed"] += views
    _cache[key] = features
    while sum(t.element_size() * t.nelement() for t in _cache.values()) > CACHE_BYTES:
        _cache.popitem(last=False)
    return features, views * len(images)


def _replays_forward(model: nn.Module, images, depth: int) -> bool:
    """Whether the model's forward from a cached prefix output gives its own logits (checked on a
    couple of images, in evaluation mode), so no architecture trains on features it would not compute."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            inputs = scale_images(images.to(next(model.parameters()).device))
            expected = model(inputs)
            replayed = output_after(model, prefix_output(model, inputs, depth), depth)
        return replayed.shape == expected.shape and torch.allclose(replayed, expected, atol=1e-4, rtol=1e-3)
    except Exception as error:  # an architecture whose forward cannot be resumed between blocks
        logger.info("Frozen blocks not cached for %s: %s", type(model).__name__, error)
        return False
    finally:
        model.train(was_training)


class CachedViews:
    """Training inputs as cached views: each step's batch holds every view of its images, and
    `choose_views` keeps one per image, drawn from the training's generator (checkpointed with it)."""

    def __init__(self, views: torch.Tensor) -> None:
        self.views = views

    def __len__(self) -> int:
        return len(self.views)

    def to(self, device, **_) -> CachedViews:
        return CachedViews(self.views.to(device))

    def pin_memory(self) -> CachedViews:
        return CachedViews(self.views.pin_memory())

    def batches(self, batches, pin_memory: bool = False):
        return (self.views[batch.to(self.views.device)] for batch in batches)

    def choose_views(self, inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        count = inputs.shape[1]
        if count == 1:
            return inputs[:, 0]
        chosen = torch.randint(count, (len(inputs),), generator=generator).to(inputs.device)
        return inputs[torch.arange(len(inputs), device=inputs.device), chosen]


class AfterPrefix(nn.Module):
    """The model from the output of its first `depth` blocks on: what cached features go through."""

    def __init__(self, model: nn.Module, depth: int) -> None:
        super().__init__()
        self.model, self.depth = model, depth

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return output_after(self.model, hidden, self.depth)


class CachedPrefixObjective(CrossEntropyObjective):
    """Cross-entropy on cached features: the model's parameters, names and checkpoints are the
    whole model's; only its forward starts after the frozen blocks."""

    reaches_past_forward = True

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.depth = depth

    def loss(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, StepParts]:
        return super().loss(AfterPrefix(model, self.depth), inputs, targets)

    def validate(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return super().validate(AfterPrefix(model, self.depth), images, targets)


def fit_frozen_prefix_once(
    model: nn.Module, train: tuple, validation: tuple, config, checkpoint_path=None, views: int | None = 8
) -> tuple[TrainResult, int]:
    """`fit`, with the frozen prefix's output computed once where it can be (see the module's
    docstring), else `fit` as it is; and the images it pushed through the prefix (reused: none)."""
    depth = cache_depth(model) if views else None
    if depth is None:
        return fit(model, train, validation, config, checkpoint_path), 0
    device = resolve_device(config.device)
    model.to(device)
    use_bf16 = trains_in_bf16(config.precision, device)
    augment = (config.augment.max_rotation_deg, config.augment.max_shift)
    train_views, train_images = prefix_views(model, train[0], depth, views if any(augment) else 1, augment, use_bf16)
    validation_views, validation_images = prefix_views(model, validation[0], depth, 1, (0.0, 0.0), use_bf16)
    prefix_images = train_images + validation_images
    if train_views is None or validation_views is None or not _replays_forward(model, train[0][:2], depth):
        return fit(model, train, validation, config, checkpoint_path), prefix_images
    plain = config.model_copy(update={"augment": type(config.augment)()})  # the views carry the augmentation
    trained = fit(
        model,
        (CachedViews(train_views), train[1]),
        (validation_views[:, 0], validation[1]),
        plain,
        checkpoint_path,
        CachedPrefixObjective(depth),
    )
    return trained, prefix_images
