"""Printed digits rendered from the TrueType fonts matplotlib installs: the offline source data set.

Each glyph is drawn once per font and stroke width, then every sample is warped in one batch:
a random affine map (rotation, scale, shear, shift) plus an elastic displacement field
(Simard et al., 2003: uniform noise smoothed by a Gaussian of σ px, scaled by α px), a random
Gaussian blur, and — by default — the UCI optical-digits preprocessing (a 32×32 binary bitmap
reduced to 8×8 counts of on-pixels in 4×4 blocks), so that source and target share it exactly.
torchvision's functional affine/elastic/blur take one parameter set per call; drawing them per
image over the whole batch is what affine_grid + grid_sample and a grouped convolution do here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont
from pydantic import Field

from headstart.ml.config import Settings
from headstart.ml.data.images import LabelledImages, block_counts_to_images, to_uint8_images

GLYPH_CANVAS = 64
BITMAP_SIZE = 32  # UCI's bitmap size before the 4×4 block counts


@dataclass(frozen=True)
class Font:
    file: str
    family: str
    bold: bool
    italic: bool


# The matplotlib fonts that draw all ten digits, by family (fonts_drawing: those with other characters).
FONTS = (
    Font("DejaVuSans.ttf", "DejaVu Sans", False, False),
    Font("DejaVuSans-Bold.ttf", "DejaVu Sans", True, False),
    Font("DejaVuSans-Oblique.ttf", "DejaVu Sans", False, True),
    Font("DejaVuSans-BoldOblique.ttf", "DejaVu Sans", True, True),
    Font("DejaVuSansMono.ttf", "DejaVu Sans Mono", False, False),
    Font("DejaVuSansMono-Bold.ttf", "DejaVu Sans Mono", True, False),
    Font("DejaVuSansMono-Oblique.ttf", "DejaVu Sans Mono", False, True),
    Font("DejaVuSansMono-BoldOblique.ttf", "DejaVu Sans Mono", True, True),
    Font("DejaVuSerif.ttf", "DejaVu Serif", False, False),
    Font("DejaVuSerif-Bold.ttf", "DejaVu Serif", True, False),
    Font("DejaVuSerif-Italic.ttf", "DejaVu Serif", False, True),
    Font("DejaVuSerif-BoldItalic.ttf", "DejaVu Serif", True, True),
    Font("STIXGeneral.ttf", "STIX", False, False),
    Font("STIXGeneralBol.ttf", "STIX", True, False),
    Font("STIXGeneralItalic.ttf", "STIX", False, True),
    Font("STIXGeneralBolIta.ttf", "STIX", True, True),
    Font("cmr10.ttf", "Computer Modern", False, False),
    Font("cmb10.ttf", "Computer Modern", True, False),
    Font("cmti10.ttf", "Computer Modern", False, True),
    Font("cmss10.ttf", "Computer Modern Sans", False, False),
    Font("cmtt10.ttf", "Computer Modern Typewriter", False, False),
)
FAMILIES = sorted({font.family for font in FONTS})
DIGITS = [str(d) for d in range(10)]


class PrintedDigitsStyle(Settings):
    """How the digits are drawn: the random pose, stroke and blur of each, and the UCI reduction;
    `characters` draws other glyphs the same way (printed letters, another script) for other tasks."""

    characters: str = Field("".join(DIGITS), min_length=2)  # one class each; labelled "digit" when the digits

    max_rotation_deg: float = Field(10.0, ge=0, le=180)
    scale_range: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (0.85, 1.05)
    max_shear: float = Field(0.15, ge=0, le=1)
    max_shift: float = Field(0.05, ge=0, le=0.5)
    stroke_widths: tuple[Annotated[int, Field(ge=0, le=8)], ...] = (0, 1, 2)
    blur_sigma_range: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (0.3, 1.0)
    elastic_alpha: float = Field(34.0, ge=0)
    elastic_sigma: float = Field(5.0, gt=0)
    uci_preprocess: bool = True


class PrintedDigitsConfig(PrintedDigitsStyle):
    """One rendered pool: its style, its size and seed, and the image form."""

    count: int = Field(ge=1)
    seed: int = 0
    image_size: int = Field(ge=8)
    channels: int = Field(ge=1)


def fonts_directory() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def fonts_drawing(characters: str) -> list[Font]:
    """The fonts whose character map has every one of `characters` (a missing glyph would draw a box)."""
    covering = [
        font
        for font in FONTS
        if set(map(ord, characters)) <= TTFont(fonts_directory() / font.file, lazy=True).getBestCmap().keys()
    ]
    if not covering:
        raise ValueError(f"ingest printed_digits.characters: no installed font draws all of {characters!r}")
    return covering


def render_glyph(font: Font, digit: str, stroke_width: int) -> np.ndarray:
    """One digit, white on black, scaled to fill most of the canvas height and centred (float 0–1)."""
    truetype = ImageFont.truetype(str(fonts_directory() / font.file), size=96)
    page = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(page).text((32, 16), digit, font=truetype, fill=255, stroke_width=stroke_width * 2, stroke_fill=255)
    glyph = page.crop(page.getbbox())
    height = int(GLYPH_CANVAS * 0.9)
    width = max(1, min(GLYPH_CANVAS, round(glyph.width * height / glyph.height)))
    glyph = glyph.resize((width, height), Image.Resampling.LANCZOS)
    canvas = Image.new("L", (GLYPH_CANVAS, GLYPH_CANVAS), 0)
    canvas.paste(glyph, ((GLYPH_CANVAS - width) // 2, (GLYPH_CANVAS - height) // 2))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _gaussian_kernels(sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernels = torch.exp(-(offsets[None, :] ** 2) / (2 * sigmas[:, None] ** 2))
    return kernels / kernels.sum(dim=1, keepdim=True)


def _blur(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one σ per image (N×C×H×W, C blurred alike)."""
    n, c, h, w = images.shape
    radius = max(1, math.ceil(3 * float(sigmas.max())))
    kernels = _gaussian_kernels(sigmas, radius).repeat_interleave(c, dim=0)
    flat = images.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernels.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernels.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, h, w)


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def warp_grid(config: PrintedDigitsConfig, n: int, generator: torch.Generator) -> torch.Tensor:
    """Sampling grid (N×32×32×2, normalised coords) of the random affine map plus elastic field."""
    angle = torch.deg2rad(_uniform(generator, n, -config.max_rotation_deg, config.max_rotation_deg))
    scale = _uniform(generator, n, *config.scale_range)
    shear = _uniform(generator, n, -config.max_shear, config.max_shear)
    shift = _uniform(generator, 2 * n, -config.max_shift, config.max_shift).view(n, 2) * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin + shear * cos, shift[:, 0]], 1), torch.stack([sin, cos + shear * sin, shift[:, 1]], 1)],
        dim=1,
    )
    grid = F.affine_grid(theta, [n, 1, BITMAP_SIZE, BITMAP_SIZE], align_corners=False)
    if config.elastic_alpha > 0:
        noise = torch.rand(n, 2, BITMAP_SIZE, BITMAP_SIZE, generator=generator) * 2 - 1
        field = _blur(noise, torch.full((n,), config.elastic_sigma)) * config.elastic_alpha
        grid = grid + field.permute(0, 2, 3, 1) * (2.0 / BITMAP_SIZE)  # pixels → normalised coords
    return grid


def render_printed_digits(config: PrintedDigitsConfig) -> LabelledImages:
    """`count` printed characters (the digits by default) with tasks digit (or character), font_family,
    bold and italic, drawn in the fonts that have every character; deterministic in `seed`."""
    generator = torch.Generator().manual_seed(config.seed)
    n, characters = config.count, list(config.characters)
    fonts = fonts_drawing(config.characters)
    families = sorted({font.family for font in fonts})
    digit = torch.randint(0, len(characters), (n,), generator=generator)
    font_index = torch.randint(0, len(fonts), (n,), generator=generator)
    stroke_index = torch.randint(0, len(config.stroke_widths), (n,), generator=generator)

    glyph_keys = torch.stack([font_index, stroke_index, digit], dim=1)
    unique_keys, glyph_of_sample = torch.unique(glyph_keys, dim=0, return_inverse=True)
    glyphs = torch.from_numpy(
        np.stack([render_glyph(fonts[f], characters[d], config.stroke_widths[s]) for f, s, d in unique_keys.tolist()])
    ).unsqueeze(1)

    warped = F.grid_sample(
        glyphs[glyph_of_sample],
        warp_grid(config, n, generator),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    blurred = _blur(warped, _uniform(generator, n, *config.blur_sigma_range))
    if config.uci_preprocess:
        threshold = _uniform(generator, n, 0.35, 0.65).view(n, 1, 1, 1)
        bitmap = (blurred > threshold).float()
        counts = F.avg_pool2d(bitmap, 4).squeeze(1) * 16
        images = block_counts_to_images(counts, config.image_size, config.channels)
    else:
        images = to_uint8_images(blurred.clamp(0, 1), config.image_size, config.channels)

    family = torch.tensor([families.index(fonts[i].family) for i in font_index.tolist()])
    task = "digit" if characters == DIGITS else "character"
    return LabelledImages(
        images=images,
        labels={
            task: digit,
            "font_family": family,
            "bold": torch.tensor([int(fonts[i].bold) for i in font_index.tolist()]),
            "italic": torch.tensor([int(fonts[i].italic) for i in font_index.tolist()]),
        },
        classes={task: characters, "font_family": families, "bold": ["no", "yes"], "italic": ["no", "yes"]},
    )
