"""arraynn: neural networks written once against the Python Array API standard.

The same backpropagation code trains on NumPy, CuPy, PyTorch, JAX or
array-api-strict. Importing arraynn imports no optional array library: a backend's
library is imported when the backend is first selected.
"""

from ._memory import reuse_freed_memory
from .backends import (
    BACKEND_NAMES,
    Backend,
    BackendError,
    BackendInfo,
    BackendNotInstalledError,
    DeviceMemoryError,
    DeviceUnavailableError,
    DtypeNotSupportedError,
    UnknownBackendError,
    available_backends,
    backend_for,
    count_transfers,
    get_backend,
)
from .classifier import (
    ConvergenceWarning,
    InputRangeWarning,
    ModelFileError,
    NNClassifier,
    NotFittedError,
    TrainingDivergedError,
)
from .data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    DatasetError,
    DatasetNotFoundError,
    DownloadError,
    fashion_mnist_source,
    get_data_home,
    load_fashion_mnist,
)
from .data.idx import IDXError, read_idx, write_idx
from .data.loader import DataLoader
from .data.preprocessing import PREPROCESSORS, Preprocessor, Standardizer, make_preprocessor
from .nn import MLP

__version__ = "0.2.0.dev0"

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendError",
    "BackendInfo",
    "BackendNotInstalledError",
    "ConvergenceWarning",
    "DataLoader",
    "DatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "FASHION_MNIST_CLASSES",
    "IDXError",
    "InputRangeWarning",
    "PREPROCESSORS",
    "Preprocessor",
    "Standardizer",
    "DeviceMemoryError",
    "DeviceUnavailableError",
    "DtypeNotSupportedError",
    "MLP",
    "ModelFileError",
    "NNClassifier",
    "NotFittedError",
    "TrainingDivergedError",
    "UnknownBackendError",
    "available_backends",
    "backend_for",
    "count_transfers",
    "fashion_mnist_source",
    "get_data_home",
    "load_fashion_mnist",
    "make_preprocessor",
    "read_idx",
    "reuse_freed_memory",
    "write_idx",
    "get_backend",
    "__version__",
]
