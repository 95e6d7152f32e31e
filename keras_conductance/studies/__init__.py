"""The paper's studies as functions with plain result objects.

Each study takes a model, examples and ``kc.measures`` you computed, and
returns a dataclass with ``summary()`` (numbers) and ``plot(path)`` (a
matplotlib figure). ``python -m keras_conductance.studies all --out results/``
runs all of them on the staged real data. Figures need matplotlib, the
clustered heatmap SciPy, feature selection scikit-learn (the ``studies``
extra); they are imported only when used.
"""

from keras_conductance.studies.agreement import AgreementResult, ablation_agreement
from keras_conductance.studies.common import METHODS, per_filter_scores, predicted_sign
from keras_conductance.studies.flips import FlipStudyResult, filters_to_flip
from keras_conductance.studies.labour import LabourResult, division_of_labour
from keras_conductance.studies.negation import NegationResult, negation_study
from keras_conductance.studies.pixels import PixelMaps, pixel_maps
from keras_conductance.studies.selection import (SelectionResult, feature_selection,
                                                 per_label_splits, select_filters,
                                                 stratified_splits)

__all__ = [
    "AgreementResult",
    "FlipStudyResult",
    "LabourResult",
    "METHODS",
    "NegationResult",
    "PixelMaps",
    "SelectionResult",
    "ablation_agreement",
    "division_of_labour",
    "feature_selection",
    "filters_to_flip",
    "negation_study",
    "per_filter_scores",
    "per_label_splits",
    "pixel_maps",
    "predicted_sign",
    "select_filters",
    "stratified_splits",
]
