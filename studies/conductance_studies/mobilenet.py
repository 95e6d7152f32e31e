"""The pretrained MobileNet v1 models the image studies use (staged weights)."""

from __future__ import annotations

__all__ = ["load_mobilenet"]


def load_mobilenet(name: str, data_dir=None):
    """MobileNet v1 with the staged pretrained weights, and its input size.

    Args:
        name: ``"0.75_224"`` or ``"0.25_128"`` (alpha and input size).
        data_dir: the staged data folder (default: ``default_data_dir()``).

    Returns:
        ``(model, size)``.
    """
    import keras

    from conductance_studies.datasets import default_data_dir

    folder = default_data_dir(data_dir) / "imagenet"
    if name == "0.75_224":
        model = keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=0.75, weights=None)
        model.load_weights(str(folder / "mobilenet_v1_0.75_224.weights.h5"))
        return model, 224
    if name == "0.25_128":
        return keras.applications.MobileNet(
            input_shape=(128, 128, 3), alpha=0.25,
            weights=str(folder / "mobilenet_2_5_128_tf.h5")), 128
    raise ValueError(f"Unknown MobileNet: {name!r}. Valid: ['0.75_224', '0.25_128'].")
