"""Keras callbacks that compute conductance while a model trains."""

from keras_conductance.callbacks.conductance_callback import ConductanceCallback

__all__ = ["ConductanceCallback"]
