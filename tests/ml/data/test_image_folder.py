import numpy as np
import pytest
from PIL import Image, features

from headstart.ml.data.image_folder import load_image_folder
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


def test_messy_inputs_load_as_the_user_sees_them(tmp_path):
    root = tmp_path / "images"
    save(root / "chiffre cinq" / "cmyk.jpg", Image.new("CMYK", (20, 20), (0, 0, 0, 255)), format="JPEG")
    palette = Image.new("P", (20, 20), 1)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    save(root / "chiffre cinq" / "palette.png", palette, transparency=1)  # white, but transparent: black
    save(root / "chiffre cinq" / "UPPER.PNG", Image.new("L", (20, 20), 0))
    save(root / "chiffre cinq" / "big.png", Image.new("L", (4000, 3000), 0))
    save(root / "数字" / "nested" / "deeper" / "n.bmp", Image.new("RGB", (8, 8), (255, 255, 255)))
    save(root / "数字" / "t.tif", Image.new("L", (8, 8), 255))
    save(root / "数字" / "t.tiff", Image.new("L", (8, 8), 255))
    if features.check("webp"):
        save(root / "数字" / "w.webp", Image.new("RGB", (8, 8), (255, 255, 255)), lossless=True)
    for hidden in (".DS_Store", "Thumbs.db", "desktop.ini", "._UPPER.PNG"):
        (root / "chiffre cinq" / hidden).write_bytes(b"\x00 not an image")
    save(root / ".thumbnails" / "x.png", Image.new("L", (8, 8), 0))  # a hidden folder is not a class
    data = load_image_folder(root, 16, 1)
    assert data.primary_classes == ["chiffre cinq", "数字"]
    counts = data.class_counts()
    assert counts["chiffre cinq"] == 4 and counts["数字"] == 3 + features.check("webp")
    five = data.images[data.primary_labels == 0]
    assert int(five.max()) == 0  # CMYK black, transparent white and the 4000×3000 black image: all black
    assert int(data.images[data.primary_labels == 1].min()) == 255  # nested BMP, TIFFs (and WEBP): white


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 30), dtype=np.uint8)
    pixels[:, :10] = 255  # a white left third, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    save(tmp_path / "photos" / "a" / "p.jpg", Image.fromarray(pixels), format="JPEG", exif=exif, quality=100)
    image = load_image_folder(tmp_path / "photos", 30, 1).images[0, 0]
    # displayed upright it is portrait with the white third on top: the top rows white, the bottom black
    assert image[:8].float().mean() > 200 and image[-8:].float().mean() < 50


@pytest.mark.parametrize(
    "name, content",
    [
        ("zero.png", b""),
        ("notes.png", b"just text, named like an image"),
        ("truncated.jpg", "truncated"),
    ],
)
def test_unreadable_files_are_refused_naming_the_file(tmp_path, name, content):
    root = tmp_path / "images"
    save(root / "a" / "fine.png", Image.new("L", (8, 8), 0))
    path = root / "a" / name
    if content == "truncated":
        save(path, Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)), format="JPEG")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(InvalidDataError, match=f"{path}: unreadable or corrupt image"):
        load_image_folder(root, 16, 1)
