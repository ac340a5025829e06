import pytest
import torch
from PIL import Image

from headstart.ml.data.images import LabelledImages
from headstart.ml.data.multitask_sets import hide_labels, load_manifest, overlay_digit_pairs, with_tasks
from headstart.ml.errors import InvalidDataError


def digits():
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    images[0, 0, 0, 0] = 200  # a dot at the top-left corner of digit "0"
    images[1, 0, 27, 27] = 250  # a dot at the bottom-right corner of digit "1"
    return LabelledImages(images=images, labels={"digit": torch.tensor([0, 1])}, classes={"digit": ["0", "1"]})


def test_pairs_put_the_left_digit_top_left_and_the_right_one_shifted_down_right():
    pairs = overlay_digit_pairs(digits(), pairs=64, seed=0)
    assert pairs.images.shape == (64, 1, 28, 28) and list(pairs.labels) == ["left", "right"]
    both = (pairs.labels["left"] == 0) & (pairs.labels["right"] == 1)
    assert both.any()
    image = pairs.images[both.nonzero()[0, 0], 0].float()
    # the 36×36 canvas is resized to 28: the left dot stays near (0, 0), the right one ends near (27, 27)
    assert image[:2, :2].sum() > 0 and image[-2:, -2:].sum() > 0 and image[10:18, 10:18].sum() == 0


def test_manifest_reads_one_column_per_task_with_empty_cells_missing(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        Image.new("L", (10, 10), 128).save(tmp_path / name)
    (tmp_path / "tasks.csv").write_text("image,shape,colour\na.png,round,red\nb.png,square,\nc.png,round,blue\n")
    data = load_manifest(tmp_path / "tasks.csv", 8, 1)
    assert data.images.shape == (3, 1, 8, 8)
    assert data.classes == {"shape": ["round", "square"], "colour": ["blue", "red"]}
    assert data.labels["colour"].tolist() == [1, -1, 0]
    (tmp_path / "bad.csv").write_text("path,shape\na.png,round\n")
    with pytest.raises(InvalidDataError, match="bad.csv: no 'image' column"):
        load_manifest(tmp_path / "bad.csv", 8, 1)
    (tmp_path / "gone.csv").write_text("image,shape\nmissing.png,round\n")
    with pytest.raises(InvalidDataError, match="missing.png: unreadable or corrupt image"):
        load_manifest(tmp_path / "gone.csv", 8, 1)


def test_manifest_reads_messy_images_like_an_image_folder(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF: turn 90° clockwise to display
    photo = Image.new("L", (30, 10), 0)
    photo.paste(255, (0, 0, 10, 10))  # landscape, the left third white: upright, the top third is white
    (tmp_path / "photos dir").mkdir()
    photo.save(tmp_path / "photos dir" / "IMG 1.JPG", format="JPEG", exif=exif, quality=100)
    Image.new("CMYK", (10, 10), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    (tmp_path / "tasks.csv").write_text("image,shape\nphotos dir/IMG 1.JPG,round\ncmyk.jpg, square\n")
    data = load_manifest(tmp_path / "tasks.csv", 30, 1)
    assert data.images.shape == (2, 1, 30, 30) and data.classes == {"shape": ["round", "square"]}
    assert data.images[0, 0, :8].float().mean() > 200 and data.images[0, 0, -8:].float().mean() < 50
    assert int(data.images[1].min()) > 240  # CMYK with no ink: white
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "bad.csv").write_text("image,shape\ncmyk.jpg,round\nnotes.png,square\n")
    with pytest.raises(InvalidDataError, match=r"notes\.png: unreadable or corrupt image"):
        load_manifest(tmp_path / "bad.csv", 8, 1)
    (tmp_path / "blank.csv").write_text("image,shape\ncmyk.jpg,round\n ,square\n")
    with pytest.raises(InvalidDataError, match=r"blank\.csv: row 2 has no image path in column 'image'"):
        load_manifest(tmp_path / "blank.csv", 8, 1)


def test_hide_labels_hides_the_asked_fraction_of_one_task():
    data = overlay_digit_pairs(digits(), pairs=100, seed=0)
    hidden = hide_labels(data, "right", 0.3, seed=1)
    assert int((hidden.labels["right"] == -1).sum()) == 30 and int((hidden.labels["left"] == -1).sum()) == 0
    with pytest.raises(InvalidDataError, match="no task 'middle'"):
        hide_labels(data, "middle", 0.3, seed=1)


def test_with_tasks_keeps_the_images_and_only_the_tasks_asked_in_that_order():
    data = LabelledImages(
        torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
        {"digit": torch.tensor([0, 1, 0, 1]), "bold": torch.tensor([1, 1, 0, 0]), "font": torch.tensor([0, 0, 1, 1])},
        {"digit": ["0", "1"], "bold": ["no", "yes"], "font": ["a", "b"]},
    )
    kept = with_tasks(data, ["font", "digit"])
    assert list(kept.labels) == ["font", "digit"] and list(kept.classes) == ["font", "digit"]
    assert kept.images is data.images and torch.equal(kept.labels["font"], data.labels["font"])
