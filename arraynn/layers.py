"""The layers a network is made of: ``from arraynn import layers``.

Each is an array-free specification with a hand-written backward pass in Array API
code (:mod:`arraynn.nn.layers` explains the protocol); :class:`arraynn.nn.Sequential`
runs a list of them over one flat parameter buffer::

    from arraynn import layers
    from arraynn.nn import Sequential

    net = Sequential([layers.Dense(64), layers.ReLU(), layers.Dropout(0.1), layers.Dense(10)],
                     input_shape=(784,), output="softmax")

``arraynn.nn.MLP``, the network of :class:`arraynn.NNClassifier`, is the dense stack of
these layers.
"""

from .nn.layers import Activation, Dense, Dropout, Flatten, Layer, ReLU, Sigmoid, Tanh, layer_from_config

__all__ = ["Activation", "Dense", "Dropout", "Flatten", "Layer", "ReLU", "Sigmoid", "Tanh",
           "layer_from_config"]
