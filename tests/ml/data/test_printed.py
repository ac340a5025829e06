import torch

from headstart.ml.data.printed import FAMILIES, PrintedDigitsConfig, render_printed_digits


def config(**overrides) -> PrintedDigitsConfig:
    return PrintedDigitsConfig(**{"count": 64, "seed": 3, "image_size": 28, "channels": 1, **overrides})


def test_same_seed_renders_identical_images_and_labels():
    first, second = render_printed_digits(config()), render_printed_digits(config())
    assert torch.equal(first.images, second.images)
    assert all(torch.equal(first.labels[t], second.labels[t]) for t in first.labels)


def test_another_seed_renders_other_images():
    assert not torch.equal(render_printed_digits(config()).images, render_printed_digits(config(seed=4)).images)


def test_labels_cover_digit_font_bold_italic():
    data = render_printed_digits(config(count=400))
    assert list(data.labels) == ["digit", "font_family", "bold", "italic"]
    assert data.classes["font_family"] == FAMILIES
    assert set(data.labels["digit"].tolist()) == set(range(10))
    assert set(data.labels["bold"].tolist()) == {0, 1} and set(data.labels["italic"].tolist()) == {0, 1}
    assert data.images.shape == (400, 1, 28, 28) and data.images.dtype == torch.uint8


def test_uci_preprocessing_yields_block_counts_at_8x8():
    """At 8×8 every pixel is a count of on-pixels in a 4×4 block (0–16), scaled to 0–255."""
    data = render_printed_digits(config(image_size=8))
    allowed = {round(count * 255 / 16) for count in range(17)}
    assert set(data.images.unique().tolist()) <= allowed
    assert data.images.float().mean() > 20  # digits are drawn, not blank


def test_three_channels_repeat_the_grey_plane():
    data = render_printed_digits(config(channels=3))
    assert data.images.shape[1] == 3
    assert torch.equal(data.images[:, 0], data.images[:, 2])


def test_other_characters_are_drawn_in_the_fonts_that_have_them_and_labelled_by_character():
    """Greek letters: only DejaVu and STIX have them, so Computer Modern is no font family there."""
    letters = render_printed_digits(config(count=200, characters="αβγδεζηθικ", uci_preprocess=False))
    assert list(letters.labels)[0] == "character" and letters.classes["character"] == list("αβγδεζηθικ")
    assert "Computer Modern" not in letters.classes["font_family"] and "STIX" in letters.classes["font_family"]
    digits = render_printed_digits(config(count=200, uci_preprocess=False))
    assert letters.images.float().mean() > 10 and not torch.equal(letters.images, digits.images)


def test_characters_no_font_draws_are_refused_with_the_field_named():
    import pytest

    with pytest.raises(ValueError, match="characters"):
        render_printed_digits(config(characters="01\u0f00"))  # a Tibetan syllable: no installed font
