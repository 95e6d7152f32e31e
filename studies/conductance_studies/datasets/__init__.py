"""Loaders for the real data the studies use (SST sentences, ImageNet photos)."""

from conductance_studies.datasets.imagenet import (
    ImageSamples,
    imagenet_class_index,
    load_imagenet_classes,
    load_imagenet_samples,
)
from conductance_studies.datasets.paths import default_data_dir
from conductance_studies.datasets.sst import (
    Sentences,
    Vocabulary,
    load_sst,
    load_sst_phrases,
    tokenize,
)

__all__ = [
    "ImageSamples",
    "Sentences",
    "Vocabulary",
    "default_data_dir",
    "imagenet_class_index",
    "load_imagenet_classes",
    "load_imagenet_samples",
    "load_sst",
    "load_sst_phrases",
    "tokenize",
]
