"""Each training's progress as it happens, for whoever listens: the MLflow hook logs a training's
curves while it runs, so a crash keeps what finished and the UI shows a long node's progress. The
library only reports; it never imports a tracker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

Event = Literal["started", "epoch", "ended"]
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
