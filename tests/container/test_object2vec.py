"""The object2vec image under SageMaker Python SDK v2 local mode, as a user would drive it: `fit` on
JSON Lines pairs (train + validation, classification), `deploy`, `predict` with the SDK's
JSONSerializer / JSONDeserializer for scores and for one side's embeddings, both checked against
the model the job wrote; a bad request answered with an error body while the server keeps serving.
One lean test (CI has two cores): a few hundred short pairs, a few epochs."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from .test_more_algorithms import deployed, extract, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from object2vec.data import sentence_pairs  # noqa: E402

pytestmark = pytest.mark.container

JSONL = "application/jsonlines"


def jsonl(records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_object2vec_jsonlines_fit_then_scores_and_embeddings(algo_image, session, sdk_env, tmp_path):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer
    from smalgos_object2vec.model import META_FILE, MODEL_FILE, Object2Vec
    from smalgos_object2vec.records import sequences

    image = algo_image("object2vec")
    records = sentence_pairs(500)
    hps = {"enc0_max_seq_len": 10, "enc0_vocab_size": 60, "enc0_network": "pooled_embedding", "enc_dim": 16,
           "enc0_token_embedding_dim": 16, "tied_token_embedding_weight": "true", "mlp_dim": 16, "mlp_activation": "relu",
           "epochs": 4, "learning_rate": 0.005, "mini_batch_size": 32, "_kvstore": "device", "_num_gpus": "auto"}
    est, model_tar = fit(session, sdk_env, image, hps, {"train": (JSONL, {"train.jsonl": jsonl(records[:400])}),
                                                        "validation": (JSONL, {"val.jsonl": jsonl(records[400:])})})
    output_tar = Path(str(model_tar).replace("model.tar.gz", "output.tar.gz"))
    if output_tar.exists():
        with tarfile.open(output_tar) as tar:
            assert "failure" not in {Path(m.name).name for m in tar.getmembers()}
    for member in (MODEL_FILE, META_FILE):
        extract(model_tar, member, tmp_path)
    model = Object2Vec.load(tmp_path)

    pairs = [{"in0": r["in0"], "in1": r["in1"]} for r in records[400:410]]
    with deployed(est, JSONSerializer(), JSONDeserializer()) as predictor:
        scores = predictor.predict({"instances": pairs})
        embeddings = predictor.predict({"instances": [{"in0": p["in0"]} for p in pairs[:3]]})
        # Local mode's runtime client hands back a 4xx body as an answer: it never reads the status.
        bad = predictor.predict({"instances": [{"in0": [1], "in1": [99]}]})
        again = predictor.predict({"instances": pairs[:1]})  # still serving
    got = np.array([p["scores"] for p in scores["predictions"]])
    np.testing.assert_allclose(got, model.scores([{**p, "label": 0} for p in pairs]), atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)
    emb = np.array([p["embeddings"] for p in embeddings["predictions"]])
    expected = model.embed("in0", sequences([p["in0"] for p in pairs[:3]], model.schema().sides[0]))
    assert emb.shape == (3, 16)
    np.testing.assert_allclose(emb, expected, atol=1e-5)
    assert sorted(bad) == ["error", "message"] and '"in1"' in bad["message"] and "99" in bad["message"], bad
    np.testing.assert_allclose(again["predictions"][0]["scores"], got[0], atol=1e-5)
