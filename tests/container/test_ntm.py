"""The ntm image under SageMaker Python SDK v2 local mode, as a user would drive it: `fit` on
sparse recordIO-protobuf word counts (the SDK's own writer) with validation and test channels,
`deploy`, `predict` with the SDK's RecordSerializer, the JSON topic weights checked against the
model the job wrote; a bad request answered with an error body while the server keeps serving.
One lean test (CI has two cores): a few hundred short documents from known topics."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from .test_lda import RECORDIO, sparse_recordio
from .test_more_algorithms import deployed, extract, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from lda.data import griffiths_data, l1_errors, match_topics  # noqa: E402

pytestmark = pytest.mark.container


def test_ntm_sparse_recordio_fit_with_validation_and_test_then_json_topic_weights(algo_image, session, sdk_env,
                                                                                 tmp_path):
    from sagemaker.amazon.common import RecordSerializer
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer
    from smalgos_ntm.model import META_FILE, MODEL_FILE, NeuralTopicModel

    image = algo_image("ntm")
    _, beta, docs, _ = griffiths_data(1200, 150, 5, seed=0)
    # What the SDK's NTM(num_topics=5, optimizer="adam", ...) sends, feature_dim and mini_batch_size by record_set().
    hps = {"num_topics": 5, "feature_dim": 25, "mini_batch_size": 64, "epochs": 60, "optimizer": "adam",
           "num_patience_epochs": 60}
    est, model_tar = fit(session, sdk_env, image, hps,
                         {"train": (RECORDIO, {"train.pbr": sparse_recordio(docs[:1000])}),
                          "validation": (RECORDIO, {"validation.pbr": sparse_recordio(docs[1000:1100])}),
                          "test": (RECORDIO, {"test.pbr": sparse_recordio(docs[1100:])})})
    for member in (MODEL_FILE, META_FILE):
        extract(model_tar, member, tmp_path)
    ntm = NeuralTopicModel.load(tmp_path)
    topics = ntm.topics()
    assert l1_errors(beta, topics[match_topics(beta, topics)]).max() < 0.35  # every bar found (unit tests: 0.22 worst)
    output_tar = Path(str(model_tar).replace("model.tar.gz", "output.tar.gz"))
    if output_tar.exists():
        with tarfile.open(output_tar) as tar:
            assert "failure" not in {Path(m.name).name for m in tar.getmembers()}

    queries = docs[1100:1108].astype(np.float32)
    with deployed(est, RecordSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict(queries)
        # Local mode's runtime client hands back a 4xx body as an answer: it never reads the status.
        predictor.serializer = JSONSerializer()
        bad = predictor.predict({"instances": [{"features": [1.0, 2.0]}]})
        again = predictor.predict({"instances": [{"features": queries[0].tolist()}]})  # still serving
    assert list(answer) == ["predictions"] and len(answer["predictions"]) == len(queries), answer
    got = np.array([p["topic_weights"] for p in answer["predictions"]])
    np.testing.assert_allclose(got, ntm.transform(queries), rtol=0, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)
    assert sorted(bad) == ["error", "message"] and "25" in bad["message"], bad
    np.testing.assert_allclose(again["predictions"][0]["topic_weights"], got[0], atol=1e-5)
