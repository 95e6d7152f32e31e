"""The paper's studies as functions with plain result objects.

Each study takes a model, examples and ``kc.measures`` you computed, and
returns a dataclass with ``summary()`` (numbers) and ``plot(path)`` (a
matplotlib figure). ``python -m conductance_studies all --out results/``
runs all of them on the staged real data. This package sits beside
``keras_conductance`` and uses only the library's public API; the library never
imports it. Install it with ``pip install -e ./studies`` from a clone.
"""

from conductance_studies.agreement import AgreementResult, ablation_agreement
from conductance_studies.common import METHODS, per_filter_scores, predicted_sign
from conductance_studies.flips import FlipStudyResult, filters_to_flip
from conductance_studies.labour import LabourResult, division_of_labour
from conductance_studies.negation import NegationResult, negation_study
from conductance_studies.selection import (SelectionResult, feature_selection,
                                           per_label_splits, select_filters,
                                           stratified_splits)

__all__ = [
    "AgreementResult",
    "FlipStudyResult",
    "LabourResult",
    "METHODS",
    "NegationResult",
    "SelectionResult",
    "ablation_agreement",
    "division_of_labour",
    "feature_selection",
    "filters_to_flip",
    "negation_study",
    "per_filter_scores",
    "per_label_splits",
    "predicted_sign",
    "select_filters",
    "stratified_splits",
]
