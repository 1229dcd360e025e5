"""The seq2seq image under SageMaker Python SDK v2 local mode, as a user would drive it: `fit` on
`.rec` files as AWS's create_vocab_proto.py writes them (train, validation) and the `vocab`
channel's two JSON vocabularies, the CPU note logged at INFO (not an error), `deploy`, `predict`
with the SDK's JSONSerializer / JSONDeserializer, the attention matrix on request, a bad request
answered with an error body naming the field while the server keeps serving. One lean test (CI
has two cores): a token-reversal task, a 32-unit LSTM, a few hundred updates."""

from __future__ import annotations

import re
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from .test_more_algorithms import deployed, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from seq2seq.tasks import WORDS, reversal, sdk_records, vocab_json  # noqa: E402

pytestmark = pytest.mark.container

RECORDIO = "application/x-recordio-protobuf"


def test_seq2seq_fit_on_rec_files_then_json_translations_with_attention(algo_image, session, sdk_env, capfd):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer
    from smalgos_seq2seq.vocab import Vocabulary

    image = algo_image("seq2seq")
    words = WORDS[:10]
    train, valid = reversal(1500, 0, 3, 6, words), reversal(100, 1, 3, 6, words)
    sv, tv = Vocabulary.build(train[0]), Vocabulary.build(train[1])
    # What the SDK's Estimator(image_uri=seq2seq) sends: every value a string.
    hps = {"rnn_num_hidden": "32", "num_embed_source": "16", "num_embed_target": "16", "batch_size": "32",
           "checkpoint_frequency_num_batches": "50", "max_num_epochs": "4", "learning_rate": "0.005",
           "bleu_sample_size": "50", "beam_size": "3"}
    est, model_tar = fit(session, sdk_env, image, hps,
                         {"train": (RECORDIO, {"train.rec": sdk_records(*train, sv, tv)}),
                          "validation": (RECORDIO, {"val.rec": sdk_records(*valid, sv, tv)}),
                          "vocab": (None, {"vocab.src.json": vocab_json(sv), "vocab.trg.json": vocab_json(tv)})})
    out = capfd.readouterr().out
    output_tar = Path(str(model_tar).replace("model.tar.gz", "output.tar.gz"))
    if output_tar.exists():
        with tarfile.open(output_tar) as tar:
            assert "failure" not in {Path(m.name).name for m in tar.getmembers()}
    with tarfile.open(model_tar) as tar:
        assert sorted(Path(m.name).name for m in tar.getmembers() if m.isfile()) == [
            "model_algo-1.json", "model_algo-1.safetensors", "vocab.src.json", "vocab.trg.json"]
    # local mode streams the container's log to stdout: the CPU note is an INFO line, the job went on
    assert re.search(r"INFO \d+\] Training on CPU: AWS's seq2seq trains on GPU instance types only", out), out[-3000:]
    bleu = [float(v) for v in re.findall(r"#quality_metric: host=\S+, epoch=\S+, validation bleu <score>=(\S+)", out)]
    assert bleu and bleu[-1] >= 90, bleu  # the last line is the best checkpoint's

    sources = ["w1 w2 w3 w4", "w5 w6 w7"]
    with deployed(est, JSONSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict({"instances": [{"data": sources[0]},
                                                  {"data": sources[1], "configuration": {"attention_matrix": "true"}}]})
        # Local mode's runtime client hands back a 4xx body as an answer: it never reads the status.
        bad = predictor.predict({"instances": [{"data": "w1 w2"}, {"source": "w3"}]})
        again = predictor.predict({"instances": [{"data": "w8 w9"}]})  # still serving
    assert [p["target"] for p in answer["predictions"]] == [" ".join(reversed(s.split())) for s in sources], answer
    assert "matrix" not in answer["predictions"][0]
    matrix = np.array(answer["predictions"][1]["matrix"])
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix.sum(1), 1, rtol=1e-4)
    assert list(matrix.argmax(1)) == [2, 1, 0]  # reversal: each target word attends to its mirror
    assert sorted(bad) == ["error", "message"] and 'instances[1]: field "data" is missing' in bad["message"], bad
    assert again == {"predictions": [{"target": "w9 w8"}]}
