import pytest
import torch

from headstart.ml.data.images import LabelledImages
from headstart.ml.data.shifts import DomainShift, shift_domain
from headstart.ml.errors import InvalidDataError


def images() -> LabelledImages:
    pixels = torch.zeros(4, 1, 9, 9, dtype=torch.uint8)
    pixels[:, :, 1:8, 4] = 200  # a vertical stroke
    return LabelledImages(pixels, {"digit": torch.tensor([0, 1, 0, 1])}, {"digit": ["0", "1"]})


def test_no_shift_returns_the_images_themselves():
    original = images()
    assert shift_domain(original, DomainShift()) is original


def test_inversion_rotation_and_noise_shift_the_pixels_and_keep_the_labels():
    original = images()
    inverted = shift_domain(original, DomainShift(invert=True))
    assert torch.equal(inverted.images, 255 - original.images)
    rotated = shift_domain(original, DomainShift(rotation_deg=90))
    assert rotated.images[0, 0, 4, 1:8].min() == 200 and rotated.images[0, 0, 1:8, 4].float().mean() < 60
    noised = [shift_domain(original, DomainShift(noise_std=0.2), stream) for stream in (0, 0, 1)]
    assert torch.equal(noised[0].images, noised[1].images) and not torch.equal(noised[0].images, noised[2].images)
    spread = (noised[0].images.float() - original.images.float())[original.images == 0]
    assert 0.1 * 255 < spread[spread > 0].mean() < 0.3 * 255  # half-normal noise, the negative half clipped at 0
    assert all(torch.equal(shifted.labels["digit"], original.labels["digit"]) for shifted in (inverted, rotated))


def test_a_shift_of_a_streamed_folder_is_refused_with_what_to_change():
    streamed = images()
    object.__setattr__(streamed, "images", [0, 1])  # anything that is not a tensor in memory
    with pytest.raises(InvalidDataError, match="stream: false"):
        shift_domain(streamed, DomainShift(invert=True))
