import torch
from sklearn.datasets import load_digits

from headstart.ml.data.handwritten import load_handwritten_digits


def test_uci_digits_converted_to_model_size():
    data = load_handwritten_digits(28, 1)
    assert data.images.shape == (1797, 1, 28, 28)
    assert data.classes == {"digit": [str(d) for d in range(10)]}
    assert torch.equal(data.labels["digit"], torch.from_numpy(load_digits().target).long())


def test_counts_scale_like_the_printed_source_at_8x8():
    data = load_handwritten_digits(8, 1)
    counts = torch.from_numpy(load_digits().images)
    assert torch.equal(data.images[:, 0], (counts / 16 * 255).round().to(torch.uint8))
