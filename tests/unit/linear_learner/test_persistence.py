"""Save / load: safetensors + JSON, identical predictions, readable without this package."""

import json

import numpy as np
import pytest
from scipy.special import expit, softmax

from smalgos.errors import ClientError
from smalgos_linear_learner.model import LinearLearner


@pytest.fixture(scope="module")
def fitted(cancer, wine, diabetes):
    kw = dict(num_models=2, mini_batch_size=32, epochs=2)
    return {
        "binary": (LinearLearner("binary_classifier", **kw).fit(cancer[0], cancer[2]), cancer[1]),
        "hinge": (LinearLearner("binary_classifier", loss="hinge_loss", **kw).fit(cancer[0], cancer[2]), cancer[1]),
        "multiclass": (LinearLearner("multiclass_classifier", num_classes=3, **kw).fit(wine[0], wine[2]), wine[1]),
        "regressor": (LinearLearner("regressor", **kw).fit(diabetes[0], diabetes[2]), diabetes[1]),
    }


@pytest.mark.parametrize("kind", ["binary", "hinge", "multiclass", "regressor"])
def test_round_trip_gives_identical_predictions(tmp_path, fitted, kind):
    est, X = fitted[kind]
    est.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    back = LinearLearner.load(tmp_path)
    np.testing.assert_array_equal(back.predict_scores(X), est.predict_scores(X))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.threshold_ == est.threshold_


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor"])
def test_the_format_needs_only_safetensors_and_json(tmp_path, fitted, kind):
    from safetensors.numpy import load_file

    est, X = fitted[kind]
    est.save(tmp_path)
    t = load_file(str(tmp_path / "model.safetensors"))
    meta = json.loads((tmp_path / "model.json").read_text())
    z = X @ t["weight"] + t["bias"]
    if meta["predictor_type"] == "binary_classifier":
        score = expit(z[:, 0])
        np.testing.assert_allclose(score, est.predict_scores(X), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal((score >= meta["threshold"]).astype(np.float32), est.predict(X))
    elif meta["predictor_type"] == "multiclass_classifier":
        np.testing.assert_allclose(softmax(z, axis=1), est.predict_scores(X), rtol=1e-5, atol=1e-6)
        assert meta["classes"] == [0.0, 1.0, 2.0]
    else:
        np.testing.assert_allclose(z[:, 0], est.predict(X), rtol=1e-5)
    assert meta["format"] == "smalgos-linear-learner" and meta["feature_dim"] == X.shape[1]
    assert t["scaler_mean"].shape == t["scaler_std"].shape == (X.shape[1],)


def test_load_refuses_what_is_not_our_model(tmp_path, fitted):
    with pytest.raises(ClientError, match="No Linear Learner model"):
        LinearLearner.load(tmp_path)
    est, _ = fitted["binary"]
    est.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ClientError, match="format_version 99"):
        LinearLearner.load(tmp_path)
