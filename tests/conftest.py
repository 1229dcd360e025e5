import logging
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# The test-only algorithm(s) under tests/algorithms are importable as smalgos_<name>; shared test
# helpers under tests/unit (algo_helpers) by name.
sys.path.insert(0, str(TESTS / "algorithms"))
sys.path.insert(0, str(TESTS / "unit"))
# The algorithm packages, should the checkout not be installed editable.
for _folder in ("kmeans", "pca", "knn", "factorization-machines", "randomcutforest", "lda", "ipinsights"):
    if str(TESTS.parent / "containers" / _folder) not in sys.path:
        sys.path.insert(0, str(TESTS.parent / "containers" / _folder))


@pytest.fixture(scope="session")
def sdk():
    """`sagemaker.amazon.common` (writers, read_records, RecordSerializer/Deserializer)."""
    logging.getLogger("sagemaker").setLevel(logging.ERROR)
    logging.getLogger("sagemaker.config").setLevel(logging.ERROR)
    from sagemaker.amazon import common

    return common
