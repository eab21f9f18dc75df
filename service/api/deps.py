"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..annotator import Annotator
from ..core.config import Settings
from ..core.metrics import Metrics


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _annotator(request: Request) -> Annotator:
    annotator: Annotator = request.app.state.annotator
    return annotator


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
AnnotatorDep = Annotated[Annotator, Depends(_annotator)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
