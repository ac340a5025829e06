import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFile, features

from headstart.ml.data.image_folder import IMAGE_SUFFIXES, load_image_folder, pil_to_tensor
from headstart.ml.errors import InvalidDataError


def write(path, mode="RGB", size=(40, 30), value=200, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(np.full(size[::-1], value * 200, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, size, value if mode in ("L", "P") else (value,) * len(mode)).save(path, format=fmt)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    write(root / "cat" / "a.png", "RGBA")
    write(root / "cat" / "b.JPG", "RGB", (64, 64), fmt="JPEG")
    write(root / "dog" / "c.png", "L", (12, 50))
    write(root / "dog" / "d.png", "P")
    write(root / "dog" / "e.png", "I;16")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_any_size_and_mode_converted_to_configured_form(folder):
    data = load_image_folder(folder, 16, 3)
    assert data.images.shape == (5, 3, 16, 16)
    assert data.classes == {"label": ["cat", "dog"]}
    assert data.labels["label"].tolist() == [0, 0, 1, 1, 1]
    assert data.images.float().mean() > 100  # pixel values survive the conversions


def test_corrupt_image_names_the_file(folder):
    (folder / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InvalidDataError, match=r"dog/broken.png: unreadable or corrupt image"):
        load_image_folder(folder, 16, 1)


def test_empty_class_folder_names_the_folder(folder):
    (folder / "bird").mkdir()
    with pytest.raises(InvalidDataError, match=r"images/bird: class folder is empty"):
        load_image_folder(folder, 16, 1)


def test_folder_outside_the_class_list_names_the_label(folder):
    with pytest.raises(InvalidDataError, match=r"label 'dog' is outside the class list \['cat'\]"):
        load_image_folder(folder, 16, 1, classes=["cat"])


def test_class_list_fixes_order(folder):
    data = load_image_folder(folder, 8, 1, classes=["dog", "cat"])
    assert data.classes == {"label": ["dog", "cat"]}
    assert data.class_counts() == {"dog": 3, "cat": 2}


def test_test_folder_may_lack_a_class_but_not_hold_an_unknown_one(folder, tmp_path):
    test_root = tmp_path / "test"
    write(test_root / "cat" / "x.png")
    data = load_image_folder(test_root, 8, 1, classes=["cat", "dog"], every_class_required=False)
    assert data.class_counts() == {"cat": 1, "dog": 0}
    write(test_root / "fox" / "y.png")
    with pytest.raises(InvalidDataError, match="label 'fox' is outside the class list"):
        load_image_folder(test_root, 8, 1, classes=["cat", "dog"], every_class_required=False)


def save(path, image: Image.Image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def load_one(root, size=16, channels=1):
    """The single image of a one-class folder, as the loader gives it."""
    data = load_image_folder(root, size, channels)
    assert len(data) == 1
    return data.images[0]


def refused(path):
    return pytest.raises(InvalidDataError, match=f"{re.escape(str(path))}: unreadable or corrupt image")


@pytest.mark.parametrize("channels, expected", [(3, [255, 0, 0]), (1, [76])], ids=["rgb", "grey"])  # red; its luma
def test_cmyk_jpeg_loads_in_the_configured_channels(tmp_path, channels, expected):
    save(tmp_path / "i" / "a" / "cmyk.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)), quality=95)
    image = load_one(tmp_path / "i", 16, channels)
    assert image.shape == (channels, 16, 16)
    assert (image.float().mean(dim=(1, 2)) - torch.tensor(expected)).abs().max() < 8


def test_16_bit_grey_png_is_rescaled_to_8_bits(tmp_path):
    ramp = (np.arange(256, dtype=np.uint16) * 235).reshape(16, 16)  # 0 … 59925
    path = save(tmp_path / "i" / "a" / "deep.png", Image.fromarray(ramp))
    with Image.open(path) as image:
        assert image.mode == "I;16"
    image = load_one(tmp_path / "i", 16, 1)[0]  # same size: no resampling, the values are the rescaled ones
    assert image.dtype == torch.uint8 and int(image.min()) == 0 and int(image.max()) == 255
    expected = torch.from_numpy(np.round(ramp / ramp.max() * 255))
    assert (image.float() - expected.float()).abs().max() <= 1


def test_palette_png_transparency_is_flattened_onto_black(tmp_path):
    palette = Image.new("P", (20, 20), 2)
    palette.putpalette([0, 0, 0] + [255, 255, 255] * 2)  # 1 and 2 are both white; 1 is transparent
    palette.paste(1, (0, 0, 10, 20))
    path = save(tmp_path / "i" / "a" / "palette.png", palette, transparency=1)
    with Image.open(path) as image:
        assert image.mode == "P" and image.info["transparency"] == 1
    image = load_one(tmp_path / "i", 20, 3)
    assert int(image[:, :, :10].max()) == 0  # transparent white → black
    assert int(image[:, :, 10:].min()) == 255  # opaque white stays white


@pytest.mark.parametrize("mode, colour", [("L", 200), ("RGB", (9, 200, 9))], ids=["grey", "rgb"])
def test_transparent_colour_key_in_grey_or_rgb_png_is_flattened_onto_black(tmp_path, mode, colour):
    save(tmp_path / "i" / "a" / "key.png", Image.new(mode, (8, 8), colour), transparency=colour)
    assert int(load_one(tmp_path / "i", 8, 3).max()) == 0


# Orientation 6: turn 90° clockwise to display (np.rot90 by -1); 8: anticlockwise (+1)
@pytest.mark.parametrize("orientation, turns", [(6, -1), (8, 1)], ids=["orientation-6", "orientation-8"])
def test_exif_rotated_jpeg_loads_upright(tmp_path, orientation, turns):
    pixels = np.zeros((16, 48), dtype=np.uint8)  # landscape 48×16, the left third white
    pixels[:, :16] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(tmp_path / "i" / "a" / "photo.jpg", Image.fromarray(pixels), exif=exif, quality=100)
    with Image.open(path) as image:
        stored = np.asarray(image)  # the pixels as stored, before the orientation tag is applied
    upright = Image.fromarray(np.ascontiguousarray(np.rot90(stored, turns)))
    assert upright.size == (16, 48)  # portrait: the image really is turned, not just resized
    loaded = load_one(tmp_path / "i", 24, 1)
    assert torch.equal(loaded, pil_to_tensor(upright, 24, 1))
    assert not torch.equal(loaded, pil_to_tensor(Image.fromarray(stored), 24, 1))
    white_rows = loaded[0, :8] if orientation == 6 else loaded[0, -8:]  # the white third ends on top (6) or bottom
    assert white_rows.float().mean() > 200 and loaded[0, 12].float().mean() < 50


def test_uppercase_extensions_load(tmp_path):
    for name, fmt in [("a.PNG", "PNG"), ("b.JPG", "JPEG"), ("c.JPEG", "JPEG"), ("d.Jpeg", "JPEG")]:
        save(tmp_path / "i" / "a" / name, Image.new("L", (8, 8), 255), format=fmt)
    data = load_image_folder(tmp_path / "i", 8, 1)
    assert data.class_counts() == {"a": 4} and int(data.images.min()) > 240


def test_hidden_and_system_files_are_skipped(tmp_path):
    root = tmp_path / "i"
    save(root / "a" / "fine.png", Image.new("L", (8, 8), 255))
    junk = b"\x00\x05\x16\x07 not an image"  # each would be refused if it were read
    for name in (".DS_Store", "Thumbs.db", "THUMBS.DB", "desktop.ini", "._fine.png", ".hidden.png"):
        (root / "a" / name).write_bytes(junk)
    (root / ".DS_Store").write_bytes(junk)
    for hidden in (root / "a" / ".thumbs" / "x.png", root / ".git" / "x.png", root / "__MACOSX" / "a" / "._f.png"):
        hidden.parent.mkdir(parents=True, exist_ok=True)
        hidden.write_bytes(junk)
    save(root / ".thumbnails" / "ok.png", Image.new("L", (8, 8), 0))  # readable, but a hidden folder is no class
    data = load_image_folder(root, 8, 1)
    assert data.classes == {"label": ["a"]} and data.class_counts() == {"a": 1}


def test_truncated_jpeg_is_refused_naming_the_file(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # headstart never turns it on: truncation must raise
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    path = save(tmp_path / "i" / "a" / "cut.jpg", Image.fromarray(noise), quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    save(tmp_path / "i" / "a" / "fine.png", Image.new("L", (8, 8), 0))
    with refused(path) as error:
        load_image_folder(tmp_path / "i", 16, 1)
    assert "truncated" in str(error.value)


@pytest.mark.parametrize(
    "name, content", [("x.png", b""), ("notes.png", b"just text, named like an image\n")], ids=["zero-byte", "text"]
)
def test_file_that_is_no_image_is_refused_naming_the_file(tmp_path, name, content):
    save(tmp_path / "i" / "a" / "fine.png", Image.new("L", (8, 8), 0))
    path = tmp_path / "i" / "a" / name
    path.write_bytes(content)
    with refused(path):
        load_image_folder(tmp_path / "i", 16, 1)


def test_4000_by_3000_image_loads_resized(tmp_path):
    big = Image.new("L", (4000, 3000), 0)
    ImageDraw.Draw(big).rectangle((0, 0, 1999, 2999), fill=255)  # the left half white
    save(tmp_path / "i" / "a" / "big.png", big, compress_level=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # 12 MP is far below Pillow's limit
        image = load_one(tmp_path / "i", 16, 1)[0]
    assert image.shape == (16, 16)
    assert int(image[:, :7].min()) == 255 and int(image[:, 9:].max()) == 0


def test_image_past_the_decompression_bomb_limit_is_refused_naming_the_file(tmp_path, monkeypatch):
    path = save(tmp_path / "i" / "a" / "bomb.png", Image.new("L", (30, 30), 0))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # 900 px > 2 × 400: Pillow raises, as it would past 179 MP
    with refused(path):
        load_image_folder(tmp_path / "i", 8, 1)


def test_images_in_subfolders_of_a_class_folder_belong_to_that_class(tmp_path):
    root = tmp_path / "i"
    save(root / "a" / "top.png", Image.new("L", (8, 8), 0))
    save(root / "a" / "sub" / "one.png", Image.new("L", (8, 8), 0))
    save(root / "a" / "sub" / "deeper" / "two.jpg", Image.new("L", (8, 8), 0))
    save(root / "b" / "2024" / "only_nested.png", Image.new("L", (8, 8), 255))
    data = load_image_folder(root, 8, 1)
    assert data.classes == {"label": ["a", "b"]} and data.class_counts() == {"a": 3, "b": 1}


def test_unicode_and_spaces_in_class_names(tmp_path):
    root = tmp_path / "i"
    save(root / "chiffre cinq" / "é 1.png", Image.new("L", (8, 8), 0))
    save(root / "数字" / "图片.png", Image.new("L", (8, 8), 255))
    data = load_image_folder(root, 8, 1)
    assert data.classes == {"label": ["chiffre cinq", "数字"]}
    assert data.class_counts() == {"chiffre cinq": 1, "数字": 1}
    assert int(data.images[data.primary_labels == 1].min()) == 255
    assert load_image_folder(root, 8, 1, classes=["数字", "chiffre cinq"]).class_counts() == {
        "数字": 1,
        "chiffre cinq": 1,
    }


@pytest.mark.parametrize(
    "suffix",
    [
        pytest.param(".webp", marks=pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WEBP")),
        ".bmp",
        ".tif",
        ".tiff",
    ],
)
def test_webp_bmp_and_tiff_load(tmp_path, suffix):
    assert suffix in IMAGE_SUFFIXES
    save(tmp_path / "i" / "a" / f"x{suffix}", Image.new("RGB", (12, 8), (255, 255, 255)), lossless=True)
    image = load_one(tmp_path / "i", 8, 3)
    assert image.shape == (3, 8, 8) and int(image.min()) == 255


def test_unlabelled_folder_loads_every_image_below_it_without_labels(folder, tmp_path):
    from headstart.ml.data.image_folder import load_unlabelled_folder
    from headstart.ml.data.images import MISSING_LABEL

    pool = load_image_folder(folder, 8, 1)
    unlabelled_root = tmp_path / "unlabelled"
    write(unlabelled_root / "x.png")
    write(unlabelled_root / "batch 2" / "y.jpg", fmt="JPEG")
    write(unlabelled_root / ".hidden.png")
    data = load_unlabelled_folder(unlabelled_root, 8, 1, pool)
    assert data.images.shape == (2, 1, 8, 8)
    assert data.classes == pool.classes and (data.primary_labels == MISSING_LABEL).all()
    with pytest.raises(InvalidDataError, match="empty.*holds no images|holds no images"):
        (tmp_path / "empty").mkdir()
        load_unlabelled_folder(tmp_path / "empty", 8, 1, pool)
