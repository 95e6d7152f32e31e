"""keras_conductance: how important is a hidden unit of a Keras model?

Conductance (Dhamdhere, Sundararajan, Yan, 2018) is the flow of Integrated
Gradients attribution through a hidden unit. This package computes it, and
the paper's comparison measures, for TensorFlow 2 / Keras 3 models.
"""

import os as _os

# Everything here is TensorFlow (tapes, tf.function, tf.distribute): refuse
# other Keras backends at once, before Keras itself fails on a missing jax.
_BACKEND = _os.environ.get("KERAS_BACKEND", "tensorflow")
if _BACKEND != "tensorflow":
    raise ImportError(
        f"keras_conductance needs Keras' TensorFlow backend; KERAS_BACKEND is "
        f"{_BACKEND!r}. Set KERAS_BACKEND=tensorflow (e.g. `export "
        "KERAS_BACKEND=tensorflow`, or os.environ['KERAS_BACKEND'] = 'tensorflow' "
        "before importing keras) and import again."
    )

import keras as _keras  # noqa: E402

if _keras.backend.backend() != "tensorflow":  # e.g. set in ~/.keras/keras.json
    raise ImportError(
        f"keras_conductance needs Keras' TensorFlow backend; Keras is using "
        f"{_keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow and import again."
    )

from keras_conductance.adapter import Unit, list_units  # noqa: E402
from keras_conductance.ablation import Ablator, FlipResult, ablate_until_flip, ablation_scores  # noqa: E402
from keras_conductance.attribution import Attribution, Measures  # noqa: E402
from keras_conductance.callbacks import (  # noqa: E402
    CSVSink,
    ConductanceCallback,
    LogsSink,
    NPZSink,
    Record,
    Sink,
    TensorBoardSink,
)
from keras_conductance.dataset_conductance import conductance_over_dataset  # noqa: E402
from keras_conductance.dataset_result import DatasetConductance, load_dataset_result  # noqa: E402
from keras_conductance.browser import unit_browser  # noqa: E402
from keras_conductance.explainer import Conductance  # noqa: E402
from keras_conductance.functional import (  # noqa: E402
    activation,
    clear_cache,
    conductance,
    gradient_x_activation,
    internal_influence,
    measures,
)
from keras_conductance.neuron import NeuronConductance, neuron_conductance  # noqa: E402
from keras_conductance.pixels import PixelMaps, pixel_maps  # noqa: E402
from keras_conductance.quadrature import METHODS, Rule, make_rule  # noqa: E402
from keras_conductance.split import Split, split_model  # noqa: E402
from keras_conductance.targets import strip_softmax  # noqa: E402
from keras_conductance.top_examples import TopExamples  # noqa: E402
from keras_conductance.token_targets import (  # noqa: E402
    TokenTarget,
    continuation,
    logit_difference,
    next_token,
)

__version__ = "0.1.0"

__all__ = [
    "Ablator",
    "Attribution",
    "CSVSink",
    "Conductance",
    "ConductanceCallback",
    "DatasetConductance",
    "FlipResult",
    "LogsSink",
    "METHODS",
    "Measures",
    "NPZSink",
    "NeuronConductance",
    "PixelMaps",
    "Record",
    "Rule",
    "Sink",
    "Split",
    "TensorBoardSink",
    "TokenTarget",
    "TopExamples",
    "Unit",
    "ablate_until_flip",
    "ablation_scores",
    "activation",
    "clear_cache",
    "conductance",
    "conductance_over_dataset",
    "continuation",
    "gradient_x_activation",
    "internal_influence",
    "list_units",
    "load_dataset_result",
    "logit_difference",
    "make_rule",
    "measures",
    "neuron_conductance",
    "next_token",
    "pixel_maps",
    "split_model",
    "strip_softmax",
    "unit_browser",
]
