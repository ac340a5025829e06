"""Each training's progress as it happens, for whoever listens: the MLflow hook logs a training's
curves while it runs, so a crash keeps what finished and the UI shows a long node's progress. The
library only reports; it never imports a tracker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

Event = Literal["started", "epoch", "ended", "planned", "done"]  # the last two: a grid's trainings (label GRID)
GRID = "grid"
Listener = Callable[[Event, str, dict[str, Any]], None]

_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """`listener(event, label, payload)` hears every labelled training while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def forward_to(listener: Listener) -> None:
    """A worker process's listener for good: its trainings' events go to the process that started it."""
    _listeners.append(listener)


def report(event: Event, label: str, payload: dict[str, Any]) -> None:
    """Tell the listeners; an unlabelled training (a test, a study's worker process) goes unheard."""
    if label:
        for listener in list(_listeners):
            listener(event, label, payload)


def planned(trainings: int, look: int, looks: int) -> None:
    """A grid plans `trainings` more (look `look` of `looks`)."""
    report("planned", GRID, {"trainings": trainings, "look": look, "looks": looks})


def done(trainings: int = 1) -> None:
    """`trainings` of a grid have ended (finished, or cut by a race's rung)."""
    report("done", GRID, {"trainings": trainings})


class GridProgress:
    """One line for a whole grid: trainings done of planned, the current look, the time left at the rate
    so far; for the console, in place of a bar per training."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, event: str, label: str, payload: dict[str, Any]) -> None:
        if label != GRID or event not in ("planned", "done"):
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=0, desc="trainings", unit="training", dynamic_ncols=True)
        if event == "planned":
            self.bar.total += payload["trainings"]
            self.bar.set_description(f"look {payload['look']} of {payload['looks']}: trainings")
            self.bar.refresh()
        else:
            self.bar.update(payload["trainings"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
