"""The randomcutforest image under SageMaker Python SDK v2 local mode: fit on recordIO (File mode)
with a labelled CSV test channel, deploy, predict with the SDK's serializers; the answers are the
scores of the model the job wrote (loaded here from model.tar.gz)."""

from __future__ import annotations

import numpy as np
import pytest

from .test_more_algorithms import RECORDIO, csv, deployed, extract, fit, recordio

pytestmark = pytest.mark.container


def test_rcf_recordio_fit_then_recordio_and_json_scores_match_the_model(algo_image, session, sdk_env, tmp_path):
    from sagemaker.amazon.common import RecordDeserializer, RecordSerializer
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer
    from smalgos_randomcutforest.model import META_FILE, MODEL_FILE, RandomCutForest

    image = algo_image("randomcutforest")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (500, 3)).astype(np.float32)
    labels = np.zeros(len(x), np.float32)
    labels[:5], x[:5] = 1, x[:5] + 8  # five records far from the rest
    # What the SDK's RandomCutForest(num_trees=50, num_samples_per_tree=64) sends via record_set().
    hps = {"num_trees": 50, "num_samples_per_tree": 64, "feature_dim": 3, "mini_batch_size": 1000}
    test_csv = b"".join(f"{int(y)},".encode() + line for y, line in zip(labels, csv(x).splitlines(keepends=True)))
    est, model_tar = fit(session, sdk_env, image, hps, {"train": (RECORDIO, {"train.pbr": recordio(x)}),
                                                        "test": ("text/csv;label_size=1", {"test.csv": test_csv})})
    for member in (MODEL_FILE, META_FILE):
        extract(model_tar, member, tmp_path)
    model = RandomCutForest.load(tmp_path)
    assert model.forest_.n_trees == 50 and model.forest_.sample_size == 64

    queries = np.concatenate([x[:3], x[100:103]])
    expected = model.anomaly_score(queries)
    with deployed(est, RecordSerializer(), RecordDeserializer()) as predictor:
        records = predictor.predict(queries)
        got = np.array([r.label["score"].float32_tensor.values[0] for r in records], np.float32)
        predictor.serializer, predictor.deserializer = CSVSerializer(), JSONDeserializer()
        body = predictor.predict(queries)
    np.testing.assert_array_equal(got, expected)
    assert list(body) == ["scores"] and [np.float32(s["score"]) for s in body["scores"]] == list(expected)
    assert expected[:3].min() > 2 * expected[3:].max()  # the far records score far higher
