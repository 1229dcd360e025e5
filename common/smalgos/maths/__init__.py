"""Maths shared by the recordIO-family algorithms (K-Means, PCA, k-NN), on torch, CPU or CUDA.

- `device`: which torch device to compute on, and numpy / scipy CSR → torch conversion.
- `distances`: pairwise squared Euclidean distances, nearest centre and top-k search, chunked so
  that memory stays bounded whatever the number of rows.
- `projections`: random ±1 (sign) and fast Johnson–Lindenstrauss (subsampled randomized Hadamard)
  projections, reproducible from a seed on any device.
- `inputs`: the checks on what every estimator receives, in training and serving alike (feature
  widths, finite values, labels, fitted or not), one message per fault; mini-batch iteration.

Nothing here knows about HTTP or `/opt/ml`: these are plain functions over arrays and tensors.
"""
