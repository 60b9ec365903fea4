"""``python -m arraynn.train``: train a Fashion-MNIST classifier and report it."""

from .cli import PRESETS, build_parser, main

__all__ = ["PRESETS", "build_parser", "main"]
