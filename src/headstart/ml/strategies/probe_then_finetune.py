"""`probe_then_finetune` (LP-FT, Kumar et al., ICLR 2022): train the head on the frozen body (the linear
probe, `probe`), then fine-tune everything from that head (`training`), so the features are not
distorted by a random head's first gradients."""

from __future__ import annotations

from headstart.ml.config import TrainingParams
from headstart.ml.feature_cache import fit_frozen_prefix_once
from headstart.ml.strategies.base import Knobs, Strategy, register
from headstart.ml.training import fit


class ProbeThenFinetuneKnobs(Knobs):
    probe: TrainingParams | None = None  # the linear-probe phase; null: as `training`


@register
class ProbeThenFinetune(Strategy):
    name = "probe_then_finetune"
    family = "parameter-based"
    Knobs = ProbeThenFinetuneKnobs

    def frozen_at_end(self, spec, total_blocks):
        return 0  # the fine-tuning phase trains everything

    def earlier_phase(self, knobs):
        return knobs.probe

    def train(self, task, config, result, checkpoint):
        probe = config.probe or config.training
        probe_path = checkpoint.with_name(f"probe-{checkpoint.name}") if checkpoint else None
        model = result.model
        probed, result.prefix_images = fit_frozen_prefix_once(
            model, task.train, task.validation, probe, probe_path, probe.frozen_feature_views
        )
        result.history = probed.history
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        finetuned = fit(model, task.train, task.validation, config.training, checkpoint).history
        result.history += [{**record, "epoch": record["epoch"] + len(result.history)} for record in finetuned]

    def phases(self, config):
        return [(config.probe or config.training, False), (config.training, True)]
