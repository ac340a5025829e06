"""Run by tests/test_distributed.py under `torchrun --nproc_per_node=2`: the loss turns infinite in
rank 1 alone, in the last step of the first epoch (so rank 0's losses of that epoch are finite);
both processes must stop with an error."""

import torch

from headstart.ml import distributed
from headstart.ml.training import CrossEntropyObjective, TrainConfig, fit
from tests.ml.test_transfer import tiny, toy_data


class InfiniteInRankOne(CrossEntropyObjective):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def loss(self, model, inputs, targets):
        self.calls += 1
        loss, parts = super().loss(model, inputs, targets)
        return (loss * float("inf") if distributed.rank() == 1 and self.calls == 3 else loss), parts


torch.manual_seed(0)
images, labels = toy_data()
config = TrainConfig(epochs=3, batch_size=16, progress=False, device="cpu")
fit(tiny(), (images, labels), (images, labels), config, objective=InfiniteInRankOne())
