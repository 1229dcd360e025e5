"""Fixtures for the XGBoost tests: SDK-made recordIO-protobuf bytes and a LocalJob per test."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp

from xgb_helpers import Job  # tests/unit/xgb_helpers.py, by name as algo_helpers


@pytest.fixture(scope="session")
def to_protobuf(sdk):
    """recordIO-protobuf bytes made by the SageMaker SDK's own writers (dense, or sparse CSR)."""

    def make(X, y=None, sparse=False) -> bytes:
        buf = io.BytesIO()
        if sparse:
            sdk.write_spmatrix_to_sparse_tensor(buf, sp.csr_matrix(np.nan_to_num(X)), y)
        else:
            sdk.write_numpy_to_dense_tensor(buf, X, y)
        return buf.getvalue()

    return make


@pytest.fixture
def job(tmp_path):
    return Job(tmp_path)
