"""Regenerate train.csv / test.csv from scikit-learn's bundled Wisconsin breast-cancer data set.

569 rows, 30 numeric features; label 1 = benign, 0 = malignant. SageMaker's CSV convention for
supervised built-ins: no header, label in the first column. A fixed, stratified 80/20 split.

    python examples/breast-cancer/make_data.py
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

HERE = Path(__file__).parent

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
for name, features, labels in (("train", X_train, y_train), ("test", X_test, y_test)):
    rows = np.column_stack([labels, features])
    np.savetxt(HERE / f"{name}.csv", rows, delimiter=",", fmt=["%d"] + ["%.6g"] * features.shape[1])
    print(f"{name}.csv: {len(rows)} rows, {features.shape[1]} features")
