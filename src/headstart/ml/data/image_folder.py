"""Users' own images: `<root>/<class>/<file>` (PNG, JPEG, WEBP, BMP or TIFF; any size and mode; subfolders of
a class folder included; hidden and system files skipped). docs/input_formats.md lists what happens to each
kind of messy input."""

from __future__ import annotations

from pathlib import Path, PurePath

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps

from headstart.ml.data.images import MISSING_LABEL, LabelledImages, to_uint8_images
from headstart.ml.errors import InvalidDataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
SYSTEM_FILES = {"thumbs.db", "desktop.ini"}  # names starting with "." (.DS_Store, ._x.png) are skipped too


def is_hidden(relative: PurePath) -> bool:
    """A hidden or system file, or one inside a hidden folder (.git, __MACOSX's ._ forks included);
    `relative`: the path below the folder being read."""
    hidden_folder_or_name = any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)
    return hidden_folder_or_name or relative.name.lower() in SYSTEM_FILES


def image_files(folder: Path) -> list[Path]:
    """Every image under `folder`, subfolders included, in a stable order; hidden and system files skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p.relative_to(folder))
    )


def pil_to_tensor(image: Image.Image, image_size: int, channels: int) -> torch.Tensor:
    """A PIL image of any mode → uint8 C×H×W of the configured size and channels."""
    mode = "L" if channels == 1 else "RGB"
    image = ImageOps.exif_transpose(image)  # a phone photo's EXIF orientation: upright, as the user sees it
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit or float grey: rescale to 8 bits first
        array = np.asarray(image, dtype=np.float32)
        scaled = array * 255.0 / max(float(array.max()), 1.0)
        image = Image.fromarray(scaled.clip(0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:  # flatten transparency onto black
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    tensor = TF.pil_to_tensor(image.convert(mode)).float() / 255.0
    return to_uint8_images(tensor.unsqueeze(0), image_size, channels)[0]


def read_image(path: Path, image_size: int, channels: int) -> torch.Tensor:
    """One file → uint8 C×H×W; anything Pillow cannot fully decode is refused naming the file.

    `load()` decodes every byte now, so a truncated file fails here, not silently grey later
    (Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` is left off; nothing in headstart turns it on).
    """
    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_tensor(image, image_size, channels)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise InvalidDataError(f"{path}: unreadable or corrupt image ({error})") from error


def check_image(path: Path) -> None:
    """A file Pillow recognises as an image, checked without decoding it (a streamed folder's files)."""
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise InvalidDataError(f"{path}: unreadable or corrupt image ({error})") from error


def load_image_folder(
    root: str | Path,
    image_size: int,
    channels: int,
    classes: list[str] | None = None,
    every_class_required: bool = True,
    stream: bool | None = False,
    stream_above_bytes: int = 4 << 30,
) -> LabelledImages:
    """Every image under `<root>/<class>/`; `classes` (optional) fixes the class list and its order.

    Other files (a README, .DS_Store) are ignored; an image that cannot be decoded is an error.
    A test folder may lack a class (`every_class_required=False`): the split check then says which.
    `stream`: keep the images on disk (`ImageFiles`, decoded per batch); None: when decoded they
    would take more than `stream_above_bytes`.
    """
    root = Path(root)
    if not root.is_dir():
        raise InvalidDataError(f"image folder {root} does not exist")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not is_hidden(p.relative_to(root)))
    if classes is None:
        classes = folders
    unknown = [name for name in folders if name not in classes]
    if unknown:
        raise InvalidDataError(f"{root / unknown[0]}: label '{unknown[0]}' is outside the class list {classes}")
    if not classes:
        raise InvalidDataError(f"image folder {root} has no class folders (expected <root>/<class>/<image>)")

    paths, labels = [], []
    for label, name in enumerate(classes):
        files = image_files(root / name) if (root / name).is_dir() else []
        if not files and every_class_required:
            raise InvalidDataError(f"{root / name}: class folder is empty or missing (no images)")
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise InvalidDataError(f"image folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if stream is None:
        stream = len(paths) * image_size * image_size * channels > stream_above_bytes
    if stream:
        from headstart.ml.data.image_files import ImageFiles

        for path in paths:
            check_image(path)
        images = ImageFiles(paths, image_size, channels)
    else:
        images = torch.stack([read_image(path, image_size, channels) for path in paths])
    return LabelledImages(
        images=images,
        labels={"label": torch.tensor(labels, dtype=torch.long)},
        classes={"label": list(classes)},
    )


def load_unlabelled_folder(root: str | Path, image_size: int, channels: int, pool: LabelledImages) -> LabelledImages:
    """Every image under `root` (subfolders included, their names ignored), without labels, in the
    tasks and classes of the labelled `pool`: the unlabelled target images of an image-folder target."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidDataError(f"unlabelled image folder {root} does not exist")
    files = image_files(root)
    if not files:
        raise InvalidDataError(f"unlabelled image folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return LabelledImages(
        images=torch.stack([read_image(path, image_size, channels) for path in files]),
        labels={task: torch.full((len(files),), MISSING_LABEL, dtype=torch.long) for task in pool.labels},
        classes=pool.classes,
    )
