"""Object2Vec: the declaration's rules, the encoders and comparator, records and their errors,
pretrained embeddings, negative sampling and bucketing, a training job through the /opt/ml contract,
and the serving answers (scores, embeddings, infer_max_seqlens, errors)."""
import contextlib
import functools
import io
import json
import math
import re

import numpy as np
import pytest
import torch

import algo_helpers
from algo_helpers import serving_client
from smalgos.declaration import load_algorithm
from smalgos.errors import ClientError
from smalgos_object2vec.declaration import encoder_spec, ignored_enc1_settings
from smalgos_object2vec.model import META_FILE, MODEL_FILE, Object2Vec, batch_order, with_negatives
from smalgos_object2vec.network import Object2VecNet, compare, comparator_width
from smalgos_object2vec.records import Schema, Side, pairs_of
from smalgos_object2vec.serve import Object2VecModel, preferred_mode

ALGO = load_algorithm("object2vec")
train_job = functools.partial(algo_helpers.train_job, "object2vec")
HPS = {"enc0_max_seq_len": "4", "enc0_vocab_size": "10", "enc0_network": "pooled_embedding", "enc_dim": "8",
       "enc0_token_embedding_dim": "8", "mlp_dim": "8", "epochs": "3", "learning_rate": "0.01",
       "_kvstore": "device", "_num_gpus": "auto", "_num_kv_servers": "auto"}
SMALL = {k: v for k, v in HPS.items() if not k.startswith("_")}
JSONL = "application/jsonlines"


def lines(records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def toy(n=120, seed=0):
    """Pairs whose label says whether the tokens' parities agree."""
    rng = np.random.default_rng(seed)
    return [{"label": int(a % 2 == b % 2), "in0": [int(a), int(a)], "in1": [int(b)]} for a, b in rng.integers(0, 10, (n, 2))]


# -- the declaration -----------------------------------------------------------------------------

def test_defaults_are_aws():
    hp = ALGO.hyperparameters.parse({"enc0_max_seq_len": "82", "enc0_vocab_size": "43533"})
    assert {k: hp[k] for k in ("enc0_network", "enc1_network", "enc_dim", "comparator_list", "dropout", "epochs",
                               "early_stopping_patience", "early_stopping_tolerance", "learning_rate",
                               "mini_batch_size", "mlp_activation", "mlp_dim", "mlp_layers", "negative_sampling_rate",
                               "num_classes", "optimizer", "output_layer", "tied_token_embedding_weight",
                               "token_embedding_storage_type", "weight_decay", "bucket_width", "enc0_layers",
                               "enc0_token_embedding_dim", "enc0_cnn_filter_width",
                               "enc0_freeze_pretrained_embedding")} == {
        "enc0_network": "hcnn", "enc1_network": "enc0", "enc_dim": 4096, "comparator_list": "hadamard, concat, abs_diff",
        "dropout": 0.0, "epochs": 30, "early_stopping_patience": 3, "early_stopping_tolerance": 0.01,
        "learning_rate": 0.0004, "mini_batch_size": 32, "mlp_activation": "linear", "mlp_dim": 512, "mlp_layers": 2,
        "negative_sampling_rate": 0, "num_classes": 2, "optimizer": "adam", "output_layer": "softmax",
        "tied_token_embedding_weight": False, "token_embedding_storage_type": "dense", "weight_decay": 0.0,
        "bucket_width": 0, "enc0_layers": "auto", "enc0_token_embedding_dim": 300, "enc0_cnn_filter_width": 3,
        "enc0_freeze_pretrained_embedding": True}
    assert [m.name for m in ALGO.metrics if m.tunable] == [
        "validation:accuracy", "test:accuracy", "validation:cross_entropy", "test:cross_entropy",
        "validation:mean_squared_error", "test:mean_squared_error"]
    assert ALGO.metric("validation:accuracy").regex == r"#quality_metric: host=\S+, epoch=\S+, validation accuracy <score>=(\S+)"
    assert ALGO.metric("test:mean_squared_error").regex == r"#quality_metric: host=\S+, test mean_squared_error <loss>=(\S+)"


@pytest.mark.parametrize("extra, message", [
    ({"enc0_max_seq_len": "0"}, "Hyperparameter enc0_max_seq_len: value 0 is outside the range [1, 5000]"),
    ({"enc0_vocab_size": "1"}, "Hyperparameter enc0_vocab_size: value 1 is outside the range [2, 3000000]"),
    ({"enc0_layers": "5"}, "Hyperparameter enc0_layers: value 5 is outside the range [1, 4]"),
    ({"enc1_network": "cnn"}, "Hyperparameter enc1_network: value 'cnn' is not one of enc0, hcnn, bilstm, pooled_embedding"),
    ({"comparator_list": "hadamard, dot"}, "Hyperparameter comparator_list: value 'hadamard, dot' is not a valid string"),
    ({"comparator_list": "concat,hadamard,concat"}, "Hyperparameter comparator_list: concat listed more than once"),
    ({"enc1_network": "bilstm"}, "Hyperparameters enc1_vocab_size and enc1_max_seq_len are required when "
                                 "enc1_network is bilstm (only enc1_network=enc0 takes enc0's)"),
    ({"enc1_network": "hcnn", "enc1_vocab_size": "12"}, "Hyperparameter enc1_max_seq_len is required when enc1_network"),
    ({"tied_token_embedding_weight": "true", "enc1_vocab_size": "11"},
     "tied_token_embedding_weight=true needs one token embedding table for both encoders: enc0_vocab_size (10) "
     "and enc1_vocab_size (11) must be equal"),
    ({"tied_token_embedding_weight": "true", "enc1_network": "hcnn", "enc1_vocab_size": "10", "enc1_max_seq_len": "3",
      "enc1_token_embedding_dim": "16"}, "enc0_token_embedding_dim (8) and enc1_token_embedding_dim (16) must be equal"),
    ({"token_embedding_storage_type": "row_sparse", "optimizer": "rmsprop"},
     "token_embedding_storage_type=row_sparse trains with sparse row gradients, which optimizer rmsprop does not "
     "take: use one of adam, adagrad, sgd"),
    ({"enc0_pretrained_embedding_file": "glove.txt"}, "Hyperparameter enc0_pretrained_embedding_file needs enc0_vocab_file"),
    ({"mlp_layers": "11"}, "Hyperparameter mlp_layers: value 11 is outside the range [0, 10]"),
    ({"_kvstor": "device"}, "Unknown hyperparameter: _kvstor"),
])
def test_bad_values_are_client_errors_naming_the_parameter(extra, message):
    with pytest.raises(ClientError, match=re.escape(message)):
        ALGO.hyperparameters.parse({**HPS, **extra})


def test_enc1_takes_enc0s_settings_unless_it_names_its_own_network():
    hp = ALGO.hyperparameters.parse({**HPS, "enc0_network": "hcnn", "enc1_max_seq_len": "2"})
    spec = encoder_spec(hp, "enc1")
    assert (spec.network, spec.layers, spec.vocab_size, spec.max_seq_len, spec.token_embedding_dim) == ("hcnn", 4, 10, 2, 8)
    hp = ALGO.hyperparameters.parse({**HPS, "enc1_network": "bilstm", "enc1_vocab_size": "7", "enc1_max_seq_len": "3"})
    spec = encoder_spec(hp, "enc1")
    assert (spec.network, spec.layers, spec.vocab_size, spec.token_embedding_dim) == ("bilstm", 1, 7, 300)
    assert ignored_enc1_settings(hp) == []
    hp = ALGO.hyperparameters.parse({**HPS, "enc1_layers": "2", "enc1_token_embedding_dim": "8"})
    assert ignored_enc1_settings(hp) == ["enc1_layers"]  # enc1 takes enc0's: said in the log


# -- the network ---------------------------------------------------------------------------------

@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_each_encoder_gives_enc_dim_and_ignores_the_padding(network):
    est = Object2Vec(enc0_max_seq_len=6, enc0_vocab_size=10, enc0_network=network, enc0_layers=2, enc_dim=12,
                     enc0_token_embedding_dim=5, enc0_cnn_filter_width=3)
    torch.manual_seed(0)
    net = est._build().eval()
    ids = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
    lengths = torch.tensor([3, 2])
    with torch.no_grad():
        e = net.encode(0, ids, lengths)
        wider = net.encode(0, torch.cat([ids, torch.full((2, 3), 7)], 1), lengths)  # other padding
        alone = net.encode(0, ids[1:, :2], lengths[1:])
    assert e.shape == (2, 12)
    torch.testing.assert_close(e, wider, rtol=0, atol=1e-6)
    torch.testing.assert_close(e[1:], alone, rtol=0, atol=1e-6)
    assert net(ids, lengths, ids, lengths).shape == (2, 2)


def test_the_comparator_concatenates_in_the_listed_order():
    e0, e1 = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 4.0]])
    got = compare(e0, e1, ["abs_diff", "concat", "hadamard"])
    assert got.tolist() == [[2.0, 6.0, 1.0, -2.0, 3.0, 4.0, 3.0, -8.0]]
    assert comparator_width(["abs_diff", "concat", "hadamard"], 2) == 8
    est = Object2Vec(enc0_max_seq_len=2, enc0_vocab_size=3, enc0_network="pooled_embedding", enc_dim=4,
                     enc0_token_embedding_dim=4, comparator_list="concat", mlp_layers=0, output_layer="mean_squared_error")
    net = est._build()
    assert isinstance(net, Object2VecNet) and net.output.in_features == 8 and net.output.out_features == 1


def test_tied_tables_are_one_and_untied_ones_two():
    base = dict(enc0_max_seq_len=2, enc0_vocab_size=5, enc0_network="pooled_embedding", enc_dim=4, enc0_token_embedding_dim=4)
    tied = Object2Vec(**base, tied_token_embedding_weight=True)._build()
    assert tied.table(0) is tied.table(1) and "embed1.weight" not in tied.state_dict()
    untied = Object2Vec(**base)._build()
    assert untied.table(0) is not untied.table(1)


# -- records -------------------------------------------------------------------------------------

SCHEMA = Schema((Side(10, 3, "enc0_vocab_size"), Side(5, 2, "enc1_vocab_size")), 3)


@pytest.mark.parametrize("record, message", [
    ({"label": 1, "in0": [1]}, 'line 3: field "in1" is missing'),
    ({"in0": [1], "in1": [2]}, 'line 3: field "label" is missing'),
    ({"label": 1, "in0": [1, 10], "in1": [2]}, 'line 3: field "in0" [1] is token id 10, outside 0 .. enc0_vocab_size-1 (9)'),
    ({"label": 1, "in0": [1], "in1": [5]}, 'line 3: field "in1" [0] is token id 5, outside 0 .. enc1_vocab_size-1 (4)'),
    ({"label": 1, "in0": [1.5], "in1": [2]}, 'line 3: field "in0" [0] is 1.5, not an integer token id'),
    ({"label": 1, "in0": [], "in1": [2]}, 'line 3: field "in0" is empty'),
    ({"label": 3, "in0": [1], "in1": [2]}, 'line 3: field "label" is 3, not a class index 0 .. num_classes-1 (2)'),
    ({"label": "1", "in0": [1], "in1": [2]}, 'line 3: field "label" must be a class index, got "1"'),
])
def test_a_bad_record_is_named_by_line_and_field(record, message):
    from smalgos_object2vec.records import read_pairs
    good = {"label": 0, "in0": [1, 2, 3, 4], "in1": [0]}
    with pytest.raises(ClientError, match=re.escape(f"Channel 'train': a.jsonl {message}")):
        read_pairs([("a.jsonl", lines([good]) + b"\n" + lines([record]))], SCHEMA, "train")


def test_records_are_cut_to_max_seq_len_and_regression_labels_are_numbers():
    pairs = pairs_of([{"label": 2.5, "in0": [1, 2, 3, 4], "in1": [4]}], Schema(SCHEMA.sides, None), lambda i: "r")
    assert pairs.in0.ids.tolist() == [[1, 2, 3]] and pairs.in0.lengths.tolist() == [3] and pairs.labels.tolist() == [2.5]
    with pytest.raises(ClientError, match='r: field "label" must be a finite number, got null'):
        pairs_of([{"label": None, "in0": [1], "in1": [4]}], Schema(SCHEMA.sides, None), lambda i: "r")


def test_negative_sampling_adds_n_pairs_with_another_in1_and_label_0():
    pairs = pairs_of([{"label": 1, "in0": [i], "in1": [i]} for i in range(5)],
                     Schema((Side(10, 3, "a"), Side(10, 3, "b")), 3), lambda i: "r")
    out = with_negatives(pairs, 3, np.random.default_rng(0))
    assert len(out) == 20 and out.labels.tolist() == [1] * 5 + [0] * 15
    neg0, neg1 = out.in0.ids[5:, 0], out.in1.ids[5:, 0]
    assert neg0.tolist() == list(range(5)) * 3 and (neg0 != neg1).all()  # never the pair's own in1


def test_bucketing_batches_pairs_of_similar_length():
    recs = [{"label": 0, "in0": [1] * (1 + i % 9), "in1": [1]} for i in range(90)]
    pairs = pairs_of(recs, Schema((Side(10, 9, "a"), Side(10, 9, "b")), 2), lambda i: "r")
    batches = batch_order(pairs, 4, 3, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(90))
    for rows in batches:
        assert len({(int(n) - 1) // 3 for n in pairs.in0.lengths[rows]}) == 1


# -- training ------------------------------------------------------------------------------------

def test_early_stopping_is_on_an_absolute_tolerance():
    from smalgos.training.neural import EarlyStopping
    s = EarlyStopping(tolerance=0.01, patience=2, absolute=True)
    bad = []
    for v in (0.5, 0.495, 0.48, 0.475, 0.472):
        s.update(v)
        bad.append(s.bad)
    assert bad == [0, 1, 0, 1, 2] and s.stop and (s.best, s.best_epoch) == (0.472, 5)
    relative, absolute = EarlyStopping(0.01, 2), EarlyStopping(0.01, 2, absolute=True)
    for stopper in (relative, absolute):
        stopper.update(50.0)
        stopper.update(49.6)  # 0.4 lower: more than 0.01, less than 1 % of 50
    assert (relative.bad, absolute.bad) == (1, 0)


def test_row_sparse_moves_only_the_rows_a_batch_touches():
    recs = [{"label": i % 2, "in0": [i % 2], "in1": [i % 2]} for i in range(8)]
    for optimizer in ("adam", "adagrad", "sgd"):
        est = Object2Vec(enc0_max_seq_len=1, enc0_vocab_size=6, enc0_network="pooled_embedding", enc_dim=4,
                         enc0_token_embedding_dim=4, epochs=1, optimizer=optimizer, learning_rate=0.1, weight_decay=0.1,
                         token_embedding_storage_type="row_sparse")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            before = est._build().state_dict()["embed0.weight"]
        est.fit(recs)
        after = torch.from_numpy(est.arrays_["embed0.weight"])
        assert est.net_.embed0.sparse
        torch.testing.assert_close(after[2:], before[2:], rtol=0, atol=0)  # ids 2..5 never seen
        assert not torch.equal(after[:2], before[:2]), optimizer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = toy(200)
    channels = {"train": {}, "validation": {"ContentType": JSONL}, "test": {"ContentType": JSONL}}
    files = {("train", "a.jsonl"): lines(data[:100]), ("train", "sub/b.jsonl"): lines(data[100:140]),
             ("validation", "v.jsonl"): lines(data[140:170]), ("test", "t.jsonl"): lines(data[170:])}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        job, rc = train_job(tmp_path_factory.mktemp("o2v"), HPS, channels, files)
    assert rc == 0, job.failure
    return job, out.getvalue(), data


def test_a_job_prints_aws_lines_and_saves_safe_files(trained):
    job, out, data = trained
    for m in ALGO.metrics:
        if "mean_squared_error" not in m.name:
            assert re.search(m.regex, out), m.name
    assert "mean_squared_error" not in out
    assert len(re.findall(r"#quality_metric: host=algo-1, epoch=\d+, train accuracy <score>=", out)) == 3
    vals = re.findall(ALGO.metric("validation:cross_entropy").regex, out)
    assert float(vals[-1]) == pytest.approx(min(map(float, vals[:-1])))  # the last line is the best epoch's
    model = Object2Vec.load(job.paths.model_dir)
    test = float(re.search(ALGO.metric("test:accuracy").regex, out).group(1))
    assert test == pytest.approx(model.evaluate(data[170:])["accuracy"])
    assert sorted(p.name for p in job.paths.model_dir.iterdir()) == [META_FILE, MODEL_FILE]
    meta = json.loads((job.paths.model_dir / META_FILE).read_text())
    assert meta["format"] == "smalgos-object2vec" and meta["encoders"][1]["network"] == "pooled_embedding"
    assert '"Algorithm": "Object2Vec"' in out and re.search(r"#throughput_metric: host=algo-1, train throughput=", out)


def test_regression_prints_mean_squared_error(tmp_path):
    data = [{**r, "label": float(r["label"]) * 2.0} for r in toy(60)]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        job, rc = train_job(tmp_path, {**HPS, "output_layer": "mean_squared_error", "epochs": "2"},
                            {"train": {}, "validation": {}}, {("train", "a.jsonl"): lines(data), ("validation", "v.jsonl"): lines(data)})
    assert rc == 0, job.failure
    assert len(re.findall(ALGO.metric("validation:mean_squared_error").regex, out.getvalue())) == 3
    assert "accuracy" not in out.getvalue()


@pytest.mark.parametrize("hps, files, message", [
    ({}, {("train", "a.jsonl"): b'{"label": 0, "in0": [1], "in1": [2]}\n\n{"label": 0, "in0": [1]}\n'},
     'ClientError: Channel \'train\': {root}/train/a.jsonl line 3: field "in1" is missing'),
    ({}, {("train", "a.jsonl"): b'{"label": 0, "in0": [1], "in1": [2]\n'},
     "ClientError: Channel 'train': {root}/train/a.jsonl line 1: not valid JSON"),
    ({"enc0_pretrained_embedding_file": "glove.txt", "enc0_vocab_file": "vocab.json"},
     {("train", "a.jsonl"): lines(toy(4)), ("auxiliary", "vocab.json"): b'{"a": 1}'},
     "ClientError: Hyperparameter enc0_pretrained_embedding_file=glove.txt: file not found in the 'auxiliary' channel "
     "({root}/auxiliary; files there: vocab.json)"),
    ({"enc0_pretrained_embedding_file": "glove.txt", "enc0_vocab_file": "vocab.json"},
     {("train", "a.jsonl"): lines(toy(4)), ("auxiliary", "vocab.json"): b'{"a": 1}',
      ("auxiliary", "glove.txt"): b"a 0.1 0.2 0.3\n"},
     "ClientError: enc0_pretrained_embedding_file glove.txt line 1: 3 value(s) after the word, but "
     "enc0_token_embedding_dim is 8"),
    ({"enc0_pretrained_embedding_file": "glove.txt", "enc0_vocab_file": "vocab.json"},
     {("train", "a.jsonl"): lines(toy(4)), ("auxiliary", "vocab.json"): b'{"a": 10}', ("auxiliary", "glove.txt"): b""},
     "ClientError: enc0_vocab_file vocab.json: word 'a' has id 10, not an integer 0 .. enc0_vocab_size-1 (9)"),
])
def test_bad_data_and_files_end_in_the_failure_file(tmp_path, hps, files, message):
    channels = {ch: {} for ch, _ in files}
    job, rc = train_job(tmp_path, {**HPS, **hps}, channels, files)
    expected = message.format(root=job.paths.base / "input" / "data")
    assert rc == 1 and job.failure.splitlines()[0].startswith(expected), job.failure


def test_several_hosts_are_refused(tmp_path):
    from smalgos.localjob import LocalJob
    from smalgos.training.runner import run_training
    job = LocalJob(tmp_path)
    job.write_config(HPS, {"train": {}}, resources={"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]})
    job.add_file("train", "a.jsonl", lines(toy(4)))
    assert run_training("object2vec", job.paths, install_signal_handler=False) == 1
    assert "set instance_count=1" in job.failure and job.failure.startswith("ClientError: Object2Vec trains on a single instance only")


def test_pretrained_vectors_fill_their_rows_and_stay_frozen(tmp_path):
    glove = b"two 1 2 3 4 5 6 7 8\nthree 8 7 6 5 4 3 2 1\nunknown 0 0 0 0 0 0 0 0\n"
    files = {("train", "a.jsonl"): lines(toy(40)), ("auxiliary", "vocab.json"): b'{"two": 2, "three": 3}',
             ("auxiliary", "glove.txt"): glove}
    extra = {"enc0_pretrained_embedding_file": "glove.txt", "enc0_vocab_file": "vocab.json"}
    for freeze in ("true", "false"):
        job, rc = train_job(tmp_path / freeze, {**HPS, **extra, "enc0_freeze_pretrained_embedding": freeze},
                            {"train": {}, "auxiliary": {"ContentType": "application/json"}}, files)
        assert rc == 0, job.failure
        table = Object2Vec.load(job.paths.model_dir).arrays_["embed0.weight"]
        if freeze == "true":
            assert table[2].tolist() == list(range(1, 9)) and table[3].tolist() == list(range(8, 0, -1))
        else:
            assert not np.allclose(table[2], range(1, 9)) and np.allclose(table[2], range(1, 9), atol=0.2)


# -- serving -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(trained):
    return serving_client(ALGO, trained[0].paths.model_dir)


def test_pairs_get_scores_in_json_and_jsonlines(client, trained):
    model = Object2Vec.load(trained[0].paths.model_dir)
    pairs = [{"in0": [1, 2], "in1": [3]}, {"in0": [4], "in1": [4]}]
    r = client.post("/invocations", data=json.dumps({"instances": pairs}), content_type="application/json")
    assert r.status_code == 200 and r.mimetype == "application/json" and list(r.get_json()) == ["predictions"]
    scores = np.array([p["scores"] for p in r.get_json()["predictions"]])
    np.testing.assert_allclose(scores, model.scores([{**p, "label": 0} for p in pairs]), rtol=1e-6)
    np.testing.assert_allclose(scores.sum(1), 1, rtol=1e-6)
    r = client.post("/invocations", data=lines(pairs), headers={"Content-Type": JSONL, "Accept": JSONL})
    assert r.mimetype == JSONL
    got = [json.loads(line) for line in r.data.decode().splitlines()]
    assert [list(g) for g in got] == [["scores"]] * 2
    np.testing.assert_allclose([g["scores"] for g in got], scores, rtol=1e-6)


def test_one_side_gets_its_encoders_embeddings_cut_by_infer_max_seqlens(client, trained):
    model = Object2Vec.load(trained[0].paths.model_dir)
    body = json.dumps({"instances": [{"in1": [1, 2, 3]}, {"in1": [5]}]})
    r = client.post("/invocations", data=body, content_type="application/json")
    emb = np.array([p["embeddings"] for p in r.get_json()["predictions"]])
    assert emb.shape == (2, 8) and r.get_json()["predictions"][0].keys() == {"embeddings"}
    r = client.post("/invocations", data=body, content_type='application/json; infer_max_seqlens="4,1"')
    cut = np.array([p["embeddings"] for p in r.get_json()["predictions"]])
    r = client.post("/invocations", data=body, content_type="application/json; infer_max_seqlens=4,1")  # AWS's spelling
    np.testing.assert_array_equal(np.array([p["embeddings"] for p in r.get_json()["predictions"]]), cut)
    r = client.post("/invocations", data=json.dumps({"instances": [{"in1": [1]}]}), content_type="application/json")
    np.testing.assert_allclose(cut[0], r.get_json()["predictions"][0]["embeddings"], rtol=1e-6)
    assert not np.allclose(cut[0], emb[0]) and np.allclose(cut[1], emb[1])
    from smalgos_object2vec.records import sequences
    np.testing.assert_allclose(emb, model.embed("in1", sequences([[1, 2, 3], [5]], model.schema().sides[1])), rtol=1e-6)


@pytest.mark.parametrize("body, headers, status, message", [
    ({"instances": [{"in0": [1], "in1": [2]}, {"in0": [1]}]}, {}, 400,
     'request body: instance 1 holds "in0" only but request body: instance 0 holds "in0" and "in1" (a pair): a '
     'request is either pairs (scores) or one side only (embeddings), not a mix'),
    ({"instances": [{"in0": [1], "in1": [12]}]}, {}, 400,
     'request body: instance 0: field "in1" [0] is token id 12, outside 0 .. enc1_vocab_size-1 (9)'),
    ({"instances": [{"in2": [1]}]}, {}, 400, 'request body: instance 0: no "in0" and no "in1" field'),
    ({"data": [1]}, {}, 400, 'request body: expected {"instances": [{"in0": [...], "in1": [...]}, ...]}'),
    ({"instances": [{"in0": [1]}]}, {"Content-Type": 'application/json; infer_max_seqlens="0,3"'}, 400,
     "Content-Type parameter infer_max_seqlens='0,3' must be two integers 1 .. 5000"),
    ({"instances": [{"in0": [1]}]}, {"Content-Type": "application/json; label_size=1"}, 415,
     "unsupported parameter 'label_size'"),
    ({"instances": [{"in0": [1]}]}, {"Content-Type": "text/csv"}, 415, "content type 'text/csv' is not supported"),
    ({"instances": [{"in0": [1]}]}, {"Accept": "text/csv"}, 406, "accept type 'text/csv' is not supported"),
])
def test_bad_requests_are_4xx_naming_the_field_and_the_server_keeps_serving(client, body, headers, status, message):
    r = client.post("/invocations", data=json.dumps(body), headers={"Content-Type": "application/json", **headers})
    assert r.status_code == status and sorted(r.get_json()) == ["error", "message"], r.data
    assert message in r.get_json()["message"], r.get_json()
    r = client.post("/invocations", data=json.dumps({"instances": [{"in0": [1]}]}), content_type="application/json")
    assert r.status_code == 200


def test_inference_preferred_mode_is_checked(trained):
    assert preferred_mode({}) == "classification" and preferred_mode({"INFERENCE_PREFERRED_MODE": "Embedding"}) == "embedding"
    with pytest.raises(ClientError, match="INFERENCE_PREFERRED_MODE='gpu' must be classification or embedding"):
        preferred_mode({"INFERENCE_PREFERRED_MODE": "gpu"})
    Object2VecModel(Object2Vec.load(trained[0].paths.model_dir), "embedding").warm_up()


def test_a_model_that_is_not_finite_is_refused(trained, tmp_path):
    model = Object2Vec.load(trained[0].paths.model_dir)
    model.arrays_["output.bias"][0] = math.nan
    with pytest.raises(ClientError, match="the model's output.bias hold NaN"):
        model.check_finite_model("Channel 'train'")
    model.save(tmp_path)
    with pytest.raises(ClientError, match="Cannot load the Object2Vec model in .*output.bias hold NaN"):
        serving_client(ALGO, tmp_path)
