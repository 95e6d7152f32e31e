"""Keras callbacks that compute conductance while a model trains."""

from keras_conductance.callbacks.conductance_callback import ConductanceCallback
from keras_conductance.callbacks.csv_sink import CSVSink
from keras_conductance.callbacks.logs_sink import LogsSink
from keras_conductance.callbacks.npz_sink import NPZSink
from keras_conductance.callbacks.record import Record
from keras_conductance.callbacks.sink import Sink
from keras_conductance.callbacks.tensorboard_sink import TensorBoardSink

__all__ = ["CSVSink", "ConductanceCallback", "LogsSink", "NPZSink", "Record", "Sink",
           "TensorBoardSink"]
