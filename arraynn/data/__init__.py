"""Data: IDX files, Fashion-MNIST, downloads, the device loader and preprocessing.

- :mod:`~arraynn.data.idx`: read and write IDX files (raw or gzip).
- :mod:`~arraynn.data.download`: fetch a file from mirrors, with retries and
  size and MD5 checks.
- :mod:`~arraynn.data.fashion_mnist`: the data set: where it lives, download,
  verification, loading.
- :mod:`~arraynn.data.loader`: :class:`DataLoader`, minibatches cut on the device.
- :mod:`~arraynn.data.preprocessing`: :class:`Standardizer`, :func:`scale`,
  :func:`scale_unit` and the :class:`Preprocessor` schemes.
"""

from .download import DownloadError
from .fashion_mnist import (
    FASHION_MNIST_CLASSES,
    DatasetError,
    DatasetNotFoundError,
    fashion_mnist_source,
    get_data_home,
    load_fashion_mnist,
)
from .idx import IDXError, read_idx, write_idx
from .loader import DataLoader, batch_bounds
from .preprocessing import PREPROCESSORS, Preprocessor, Standardizer, make_preprocessor, scale, scale_unit

__all__ = [
    "FASHION_MNIST_CLASSES",
    "PREPROCESSORS",
    "DataLoader",
    "DatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "IDXError",
    "Preprocessor",
    "Standardizer",
    "batch_bounds",
    "fashion_mnist_source",
    "get_data_home",
    "load_fashion_mnist",
    "make_preprocessor",
    "read_idx",
    "scale",
    "scale_unit",
    "write_idx",
]
