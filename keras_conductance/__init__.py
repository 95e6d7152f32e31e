"""keras_conductance: how important is a hidden unit of a Keras model?

Conductance (Dhamdhere, Sundararajan, Yan, 2018) is the flow of Integrated
Gradients attribution through a hidden unit. This package computes it, and
the paper's comparison measures, for TensorFlow 2 / Keras 3 models.
"""

from keras_conductance.adapter import Unit, list_units
from keras_conductance.ablation import Ablator, FlipResult, ablate_until_flip, ablation_scores
from keras_conductance.attribution import Attribution, Measures
from keras_conductance.callbacks import ConductanceCallback
from keras_conductance.dataset_conductance import DatasetConductance, conductance_over_dataset
from keras_conductance.explainer import Conductance
from keras_conductance.functional import (
    activation,
    clear_cache,
    conductance,
    gradient_x_activation,
    internal_influence,
    measures,
)
from keras_conductance.neuron import NeuronConductance, neuron_conductance
from keras_conductance.quadrature import METHODS, Rule, make_rule
from keras_conductance.split import Split, split_model
from keras_conductance.targets import strip_softmax

__version__ = "0.1.0"

__all__ = [
    "Ablator",
    "Attribution",
    "Conductance",
    "ConductanceCallback",
    "DatasetConductance",
    "FlipResult",
    "METHODS",
    "Measures",
    "NeuronConductance",
    "Rule",
    "Split",
    "Unit",
    "ablate_until_flip",
    "ablation_scores",
    "activation",
    "clear_cache",
    "conductance",
    "conductance_over_dataset",
    "gradient_x_activation",
    "internal_influence",
    "list_units",
    "make_rule",
    "measures",
    "neuron_conductance",
    "split_model",
    "strip_softmax",
]
