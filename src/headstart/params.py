"""Typed parameters. Kedro validates `params:` node inputs against these models before any node runs,
so a wrong type, range or unknown key stops `kedro run` with a message naming the field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from headstart.ml.data.printed import PrintedDigitsConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageParams(Strict):
    """The model's input form; every source and target is converted to it."""

    size: int = Field(28, ge=8, le=512)
    channels: Literal[1, 3] = 1


class PrintedDigitsParams(Strict):
    """Defaults are the renderer's own (`PrintedDigitsConfig`), so the two cannot drift."""

    kind: Literal["printed_digits"]
    count: int = Field(10000, ge=20)
    seed: int = 0
    max_rotation_deg: float = Field(PrintedDigitsConfig.max_rotation_deg, ge=0, le=180)
    scale_range: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = PrintedDigitsConfig.scale_range
    max_shear: float = Field(PrintedDigitsConfig.max_shear, ge=0, le=1)
    max_shift: float = Field(PrintedDigitsConfig.max_shift, ge=0, le=0.5)
    stroke_widths: tuple[Annotated[int, Field(ge=0, le=8)], ...] = PrintedDigitsConfig.stroke_widths
    blur_sigma_range: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = PrintedDigitsConfig.blur_sigma_range
    elastic_alpha: float = Field(PrintedDigitsConfig.elastic_alpha, ge=0)
    elastic_sigma: float = Field(PrintedDigitsConfig.elastic_sigma, gt=0)
    uci_preprocess: bool = PrintedDigitsConfig.uci_preprocess


class HandwrittenDigitsParams(Strict):
    kind: Literal["handwritten_digits"]


class TorchvisionParams(Strict):
    kind: Literal["torchvision"]
    name: str
    split: str = "train"
    test_split: str | None = None
    root: str = "data/01_raw/torchvision"
    download: bool = True
    limit: int | None = Field(None, ge=1)


class ImageFolderParams(Strict):
    kind: Literal["image_folder"]
    root: str
    test_root: str | None = None
    classes: list[str] | None = None


DataSourceParams = Annotated[
    PrintedDigitsParams | HandwrittenDigitsParams | TorchvisionParams | ImageFolderParams,
    Field(discriminator="kind"),
]


class SplitParams(Strict):
    seed: int = 0
    source_validation_fraction: float = Field(0.1, gt=0, lt=1)
    target_validation_fraction: float = Field(0.2, gt=0, lt=1)
    target_test_fraction: float = Field(0.3, gt=0, lt=1)
    labels_per_class: Annotated[int, Field(ge=1)] | Literal["all"] = 10


class IngestParams(Strict):
    image: ImageParams = ImageParams()
    source: DataSourceParams
    target: DataSourceParams
    split: SplitParams = SplitParams()
    samples_per_grid: int = Field(20, ge=1, le=100)
