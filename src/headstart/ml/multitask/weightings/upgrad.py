"""UPGrad (Quinton & Rey 2024), TorchJD's `UPGrad` aggregator: the shared parameters' Jacobian (one row
per task) aggregated so the update conflicts with no task; each head gets its own task's gradient."""

from __future__ import annotations

from torchjd.aggregation import UPGrad
from torchjd.autojac import backward as torchjd_backward
from torchjd.autojac import jac_to_grad

from headstart.ml.multitask.weightings.base import SharedGradientWeighting, register_weighting


@register_weighting("upgrad")
class UPGradWeighting(SharedGradientWeighting):
    """TorchJD's UPGrad on the shared parameters (Jacobian descent); the heads by plain backprop."""

    def shared_backward(self, shared, total, losses):
        torchjd_backward(list(losses.values()), inputs=shared, retain_graph=True)  # fills each p.jac
        total.backward()  # the heads' gradients; the shared ones are replaced below
        for p in shared:
            p.grad = None
        jac_to_grad(shared, UPGrad())
