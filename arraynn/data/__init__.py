"""Data: IDX files, Fashion-MNIST, the device loader and preprocessing."""
