"""Shared data for the Linear Learner tests: scikit-learn's bundled data sets, split once."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.model_selection import train_test_split


def _split(loader, stratify=True, seed=0):
    X, y = loader(return_X_y=True)
    X = X.astype(np.float32)
    y = y.astype(np.float32)
    return train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y if stratify else None)


@pytest.fixture(scope="session")
def cancer():
    return _split(load_breast_cancer)


@pytest.fixture(scope="session")
def wine():
    return _split(load_wine)


@pytest.fixture(scope="session")
def digits():
    return _split(load_digits)


@pytest.fixture(scope="session")
def diabetes():
    return _split(load_diabetes, stratify=False)
