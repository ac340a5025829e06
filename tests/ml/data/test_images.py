import pytest
import torch

from headstart.ml.data.images import LabelledImages, to_uint8_images
from headstart.ml.errors import InvalidDataError


def test_label_outside_class_list_names_task_and_label():
    with pytest.raises(InvalidDataError, match=r"task 'digit': label 3 is outside the class list \['0', '1', '2'\]"):
        LabelledImages(
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8), {"digit": torch.tensor([0, 3])}, {"digit": ["0", "1", "2"]}
        )


def test_missing_labels_are_allowed_and_not_counted():
    data = LabelledImages(
        torch.zeros(3, 1, 4, 4, dtype=torch.uint8), {"t": torch.tensor([0, -1, 1])}, {"t": ["a", "b"]}
    )
    assert data.class_counts() == {"a": 1, "b": 1}


def test_rgb_to_grey_and_resize():
    red = torch.zeros(1, 3, 10, 10)
    red[:, 0] = 1.0
    grey = to_uint8_images(red, 5, 1)
    assert grey.shape == (1, 1, 5, 5)
    assert int(grey[0, 0, 2, 2]) == round(0.299 * 255)
