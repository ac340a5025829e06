import numpy as np
import pytest
from PIL import Image

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
