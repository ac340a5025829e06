"""The loss weighting's interface, the registry that files each weighting by name, and the conf entry
that builds one.

A weighting's knobs are the keyword arguments of its constructor, declared there once: their defaults
are the ones conf falls back on, their annotations the bounds conf is checked against (`Rate`,
`NonNegative`). `tasks` and `seed` are the run's to give, never conf's.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Annotated, Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator
from torch import nn

from headstart.ml.config import Settings

Rate = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]

RUN_GIVEN = ("tasks", "seed")  # a constructor's arguments that the run supplies, not conf


class LossWeighting(nn.Module):
    """Turns per-task losses into gradients. `combine` gives the scalar that is logged and checked
    for NaN; `backward` fills the gradients (plain backprop of that scalar unless overridden)."""

    name: ClassVar[str]  # its `kind` in conf, set by `register_weighting`
    needs_shared_parameters: ClassVar[bool] = False  # works on a shared trunk's gradients: hard sharing only

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)

    def parameter_groups(self) -> list[dict]:
        return []

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, model: nn.Module, total: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        total.backward()

    def after_step(self, remeasure: Callable[[], dict[str, torch.Tensor]]) -> None:
        """After the optimizer's step; `remeasure()` gives the batch's task losses under the new weights."""

    def weights(self) -> dict[str, float]:
        return {task: 1.0 for task in self.tasks}


class SharedGradientWeighting(LossWeighting):
    """The losses summed, and the shared parameters' gradient made from the per-task gradients by
    `shared_backward` (with one task in the batch, plain backprop)."""

    needs_shared_parameters = True

    def combine(self, losses):
        return sum(losses.values())

    def backward(self, model, total, losses):
        if len(losses) < 2:
            total.backward()
        else:
            self.shared_backward(model.shared_parameters(), total, losses)

    def shared_backward(self, shared: list[nn.Parameter], total: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError


class WeightingRegistry(dict[str, type[LossWeighting]]):
    """Weightings by name; an unknown name is an error naming the known ones, never another weighting."""

    def __missing__(self, name: str) -> type[LossWeighting]:
        raise self.unknown(name)

    def unknown(self, name: str) -> ValueError:
        return ValueError(f"unknown loss weighting {name!r}; the weightings are {', '.join(sorted(self))}")


WEIGHTINGS = WeightingRegistry()

Registered = TypeVar("Registered", bound=type[LossWeighting])


def register_weighting(name: str) -> Callable[[Registered], Registered]:
    """Files a `LossWeighting` subclass under `name`, its `kind` in conf."""

    def register(weighting: Registered) -> Registered:
        if name in WEIGHTINGS:
            raise ValueError(f"loss weighting {name!r} is registered twice")
        weighting.name = name
        WEIGHTINGS[name] = weighting
        return weighting

    return register


def weighting_knobs(weighting: type[LossWeighting]) -> dict[str, inspect.Parameter]:
    """The constructor's arguments that conf sets: every one but `tasks` and `seed`."""
    parameters = inspect.signature(weighting).parameters
    return {name: parameter for name, parameter in parameters.items() if name not in RUN_GIVEN}


@cache
def knobs_model(weighting: type[LossWeighting]) -> type[BaseModel]:
    """A pydantic model of the weighting's knobs, made from its constructor: conf is checked against the
    one declaration."""
    hints = typing.get_type_hints(weighting.__init__, include_extras=True)
    fields: dict[str, Any] = {
        name: (hints.get(name, Any), ... if parameter.default is inspect.Parameter.empty else parameter.default)
        for name, parameter in weighting_knobs(weighting).items()
    }
    return create_model(f"{weighting.__name__}Knobs", __config__=ConfigDict(extra="forbid"), **fields)


def checked_knobs(kind: str, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """`knobs` checked against weighting `kind`'s constructor, its defaults filled in; one line on error."""
    weighting = WEIGHTINGS[kind]
    try:
        return knobs_model(weighting).model_validate(dict(knobs)).model_dump()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        takes = ", ".join(weighting_knobs(weighting)) or "no settings"
        raise ValueError(f"weighting {kind} takes {takes}; {problems}") from None


def build_weighting(kind: str, tasks: list[str], seed: int = 0, **knobs: Any) -> LossWeighting:
    """The weighting `kind` for `tasks`, given `knobs` (checked, defaults filled) and `seed` if it takes one."""
    weighting = WEIGHTINGS[kind]
    seeded = {"seed": seed} if "seed" in inspect.signature(weighting).parameters else {}
    return weighting(tasks, **checked_knobs(kind, knobs), **seeded)


def tunable_knobs() -> tuple[str, ...]:
    """Every registered weighting's number-valued knobs, once each: what a method's `tune` grid may name."""
    names: dict[str, None] = {}
    for weighting in WEIGHTINGS.values():
        for name, field in knobs_model(weighting).model_fields.items():
            if field.annotation is float:
                names[name] = None
    return tuple(names)


class WeightingParams(Settings):
    """A method's loss weighting in conf: `kind`, a registered weighting, and that weighting's own knobs,
    e.g. {kind: famo, lr: 0.025}; a knob left out takes its constructor's default."""

    model_config = ConfigDict(extra="allow")  # the knobs: checked against `kind`'s constructor

    kind: str = "fixed"

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        if kind not in WEIGHTINGS:
            raise WEIGHTINGS.unknown(kind)
        return kind

    @model_validator(mode="before")
    @classmethod
    def _its_own_knobs(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        kind = data.get("kind", cls.model_fields["kind"].default)
        if kind not in WEIGHTINGS:
            return data  # left to `_registered`, which names the known ones
        return {"kind": kind, **checked_knobs(kind, {k: v for k, v in data.items() if k != "kind"})}

    @property
    def knobs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self, tasks: list[str], seed: int, setting: Mapping[str, Any] | None = None) -> LossWeighting:
        """The weighting, with the knobs of a candidate `setting` (a tuning grid's) that are its own
        overriding conf's (`seed` seeds PCGrad's projection order)."""
        tuned = {k: v for k, v in (setting or {}).items() if k in weighting_knobs(WEIGHTINGS[self.kind])}
        return build_weighting(self.kind, tasks, seed, **{**self.knobs, **tuned})
