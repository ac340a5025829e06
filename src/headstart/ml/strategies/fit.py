"""`fit`: transfer (copy and freeze per the spec), then train what is trainable. The parameter-based
strategies are this one procedure with another spec and other rates: `scratch` (nothing copied),
`feature_extractor` (the body frozen), `finetune_top` (the last block and the head train),
`finetune_full` (everything trains, the body at a lower rate). Frozen blocks' features are computed
once and cached (headstart.ml.feature_cache); a candidate's seeds may train as one stack.
"""

from __future__ import annotations

from headstart.ml.feature_cache import fit_frozen_prefix_once
from headstart.ml.strategies.base import Strategy, register


@register
class Fit(Strategy):
    name = "fit"
    family = "parameter-based"
    raced = True

    def train(self, task, config, result, checkpoint):
        training = config.training
        trained, result.prefix_images = fit_frozen_prefix_once(
            result.model, task.train, task.validation, training, checkpoint, training.frozen_feature_views
        )
        result.history = trained.history

    def stackable(self, config):
        return True
