"""The ipinsights image under SageMaker Python SDK v2 local mode: fit on `entity,ip` CSV (train and
validation channels, File mode), deploy, predict with the serializers of the SDK's own
IPInsightsPredictor (CSV in, JSON out), and the `verbose=True` Accept; the answers are checked
against the model the job wrote."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from .test_more_algorithms import deployed, fit

pytestmark = pytest.mark.container


def test_ipinsights_csv_fit_then_csv_to_json_dot_products(algo_image, session, sdk_env, tmp_path):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer
    from smalgos_ipinsights.serve import load_model
    from smalgos_ipinsights.synthetic import csv_lines, login_events

    image = algo_image("ipinsights")
    who, addresses, _, _ = login_events(n_users=30, n_asns=60, max_events=30, seed=4)
    log = csv_lines(who, addresses)
    hps = {"num_entity_vectors": 200, "vector_dim": 8, "epochs": 2, "mini_batch_size": 100, "learning_rate": 0.01}
    est, model_tar = fit(session, sdk_env, image, hps, {"train": ("text/csv", {"train.csv": log}),
                                                        "validation": ("text/csv", {"validation.csv": log})})
    with tarfile.open(model_tar) as tar:
        tar.extractall(tmp_path, filter="data")
    model = load_model(tmp_path)

    rows = [["user_1", "1.2.3.4"], ["user_2", "10.0.0.1"], ["someone", "2001:db8::1"]]
    expected, ip, entity = model.estimator.embeddings([tuple(r) for r in rows])
    with deployed(est, CSVSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict(rows)
        verbose = predictor.predict(rows, initial_args={"Accept": "application/json; verbose=True"})
    np.testing.assert_array_equal(np.float32([p["dot_product"] for p in answer["predictions"]]), expected)
    assert [list(p) for p in verbose["predictions"]] == [["dot_product", "ip_embedding", "entity_embedding"]] * 3
    np.testing.assert_array_equal(np.float32([p["ip_embedding"] for p in verbose["predictions"]]), ip)
    np.testing.assert_array_equal(np.float32([p["entity_embedding"] for p in verbose["predictions"]]), entity)
