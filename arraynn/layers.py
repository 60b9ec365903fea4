"""The layers a network is made of: ``from arraynn import layers``.

Each is an array-free specification with a hand-written backward pass in Array API
code (:mod:`arraynn.nn.layers` explains the protocol); :class:`arraynn.nn.Sequential`
runs a list of them over one flat parameter buffer::

    from arraynn import layers
    from arraynn.nn import Sequential

    net = Sequential([layers.Dense(64), layers.ReLU(), layers.Dropout(0.1), layers.Dense(10)],
                     input_shape=(784,), output="softmax")

A convolutional network takes images ``(channels, height, width)`` (PyTorch's and
ONNX's layout; :mod:`arraynn.nn.conv`)::

    net = Sequential([layers.Conv2D(32, 3, padding="same"), layers.ReLU(), layers.MaxPool2D(2),
                      layers.Flatten(), layers.Dense(10)], input_shape=(1, 28, 28))

``arraynn.nn.MLP``, the network of :class:`arraynn.NNClassifier`, is the dense stack of
these layers.
"""

from .nn.layers import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
    layer_from_config,
)

__all__ = ["Activation", "AvgPool2D", "BatchNorm", "Conv2D", "Dense", "Dropout", "Flatten", "GlobalAvgPool2D",
           "Layer", "MaxPool2D", "ReLU", "Sigmoid", "Tanh", "layer_from_config"]
