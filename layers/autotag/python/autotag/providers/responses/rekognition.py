"""AWS Rekognition ``DetectLabels`` and ``DetectModerationLabels`` answers (as boto3 returns them)."""

from __future__ import annotations

from autotag.providers.responses import ItemList, Items, NonBlank, Number, OrNone, ResponseModel, Text


class Box(ResponseModel):
    """Ratios of the image size; they may run past the frame."""

    Left: float
    Top: float
    Width: float
    Height: float


class Instance(ResponseModel):
    BoundingBox: OrNone[Box] = None
    Confidence: Number = None


class Named(ResponseModel):
    Name: NonBlank


class Label(ResponseModel):
    Name: NonBlank
    Confidence: Number = None
    Instances: Items[Instance] = []
    Parents: Items[Named] = []
    Aliases: Items[Named] = []
    Categories: Items[Named] = []


class DetectLabelsResponse(ResponseModel):
    Labels: ItemList[Label]
    LabelModelVersion: Text = None


class ModerationLabel(ResponseModel):
    Name: NonBlank
    Confidence: Number = None
    ParentName: Text = None


class DetectModerationLabelsResponse(ResponseModel):
    ModerationLabels: ItemList[ModerationLabel]
