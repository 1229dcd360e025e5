"""Seq2Seq: the declaration, vocabularies and records (and their errors), the attention types, the
ConvS2S layers, beam search against greedy search, the learning-rate schedules, a training job
through the /opt/ml contract on a generated reversal task (BLEU on held-out pairs), and the
serving bodies (JSON with the attention matrix, JSON Lines, recordIO-protobuf)."""
import contextlib
import io
import json
import math
import re

import numpy as np
import pytest
import torch

import algo_helpers
from algo_helpers import serving_client
from seq2seq.tasks import WORDS, reversal, sdk_records, vocab_json
from smalgos.declaration import load_algorithm
from smalgos.errors import ClientError
from smalgos.training.neural import InverseSqrtTimeDecay, InverseTimeDecay, PlateauReduce
from smalgos_seq2seq.attention import Attention
from smalgos_seq2seq.cnn import CNNDecoder, CNNEncoder
from smalgos_seq2seq.data import pairs_to_recordio, parallel_buckets, read_pairs, record_bytes
from smalgos_seq2seq.model import FILES, META_FILE, MODEL_FILE, Seq2Seq, pairs_of
from smalgos_seq2seq.network import build_network, network_config
from smalgos_seq2seq.search import beam_search, greedy_search
from smalgos_seq2seq.train import GPU_NOTE
from smalgos_seq2seq.vocab import EOS, Vocabulary

ALGO = load_algorithm("seq2seq")
HP = ALGO.hyperparameters
train_job = __import__("functools").partial(algo_helpers.train_job, "seq2seq")
RECORDIO = "application/x-recordio-protobuf"
CHANNELS = {"train": {"ContentType": RECORDIO}, "validation": {"ContentType": RECORDIO}, "vocab": {}}
SMALL = {"rnn_num_hidden": "64", "num_embed_source": "32", "num_embed_target": "32", "batch_size": "32",
         "checkpoint_frequency_num_batches": "100", "learning_rate": "0.003", "max_num_epochs": "4",
         "bleu_sample_size": "100", "beam_size": "3", "_tuning_objective_metric": "validation:bleu"}
TRAIN, VALID, TEST = reversal(3000, 0), reversal(200, 1), reversal(200, 2)
SV, TV = Vocabulary.build(TRAIN[0]), Vocabulary.build(TRAIN[1])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small models train fastest on one thread (and CI's two cores are shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def files(train=TRAIN, valid=VALID, sv=SV, tv=TV):
    return {("train", "train.rec"): sdk_records(*train, sv, tv), ("validation", "val.rec"): sdk_records(*valid, sv, tv),
            ("vocab", "vocab.src.json"): vocab_json(sv), ("vocab", "vocab.trg.json"): vocab_json(tv)}


# -- the declaration -----------------------------------------------------------------------------

def test_defaults_are_aws():
    hp = HP.parse({})
    assert {k: hp[k] for k in ("batch_size", "beam_size", "bleu_sample_size", "bucket_width", "bucketing_enabled",
                               "checkpoint_frequency_num_batches", "checkpoint_threshold", "clip_gradient",
                               "cnn_activation_type", "cnn_num_hidden", "learning_rate", "lr_scheduler_type",
                               "max_num_batches", "max_num_epochs", "momentum", "optimized_metric",
                               "rnn_attention_type", "rnn_num_hidden", "rnn_attention_num_hidden",
                               "weight_init_scale", "xavier_factor_type", "rnn_attention_in_upper_layers")} == {
        "batch_size": 64, "beam_size": 5, "bleu_sample_size": 0, "bucket_width": 10, "bucketing_enabled": True,
        "checkpoint_frequency_num_batches": 1000, "checkpoint_threshold": 3, "clip_gradient": 1.0,
        "cnn_activation_type": "glu", "cnn_num_hidden": 512, "learning_rate": 0.0003,
        "lr_scheduler_type": "plateau_reduce", "max_num_batches": -1, "max_num_epochs": None, "momentum": None,
        "optimized_metric": "perplexity", "rnn_attention_type": "mlp", "rnn_num_hidden": 1024,
        "rnn_attention_num_hidden": None, "weight_init_scale": 2.34, "xavier_factor_type": "in",
        "rnn_attention_in_upper_layers": True}
    assert len(HP.params) == 49 + 4  # the Developer Guide's table, every row, and our 4 transformer_* ones
    assert network_config(hp, 10, 10)["rnn_attention_num_hidden"] == 1024  # unset: rnn_num_hidden
    assert [m.name for m in ALGO.metrics if m.tunable] == ["validation:perplexity", "validation:accuracy",
                                                           "validation:bleu"]


@pytest.mark.parametrize("raw, message", [
    ({"rnn_num_hidden": "63"}, "Hyperparameter rnn_num_hidden: value 63 must be even"),
    ({"max_num_batches": "0"}, "Hyperparameter max_num_batches: value 0 is not allowed"),
    ({"max_num_batches": "-2"}, "Hyperparameter max_num_batches: value -2 is outside the range [-1, inf)"),
    ({"optimized_metric": "bleu"}, "Hyperparameter optimized_metric: bleu needs BLEU at checkpoints"),
    ({"min_num_epochs": "5", "max_num_epochs": "2"}, "min_num_epochs (5) and max_num_epochs (2)"),
    ({"rnn_attention_type": "location"}, "is not one of dot, fixed, mlp, bilinear"),
    ({"encoder_type": "lstm"}, "Hyperparameter encoder_type: value 'lstm' is not one of rnn, cnn"),
    ({"embed_dropout_source": "1.5"}, "outside the range [0, 1]"),
    ({"bleu_sample_size": "-2"}, "outside the range [-1, inf)"),
    ({"decoder_type": "transformer", "transformer_model_size": "100"},
     "transformer_model_size (100) and transformer_attention_heads (8): the model size must be a multiple"),
])
def test_bad_values_are_client_errors_naming_the_parameter(raw, message):
    with pytest.raises(ClientError, match=re.escape(message)):
        HP.parse(raw)


# -- vocabularies and records --------------------------------------------------------------------

@pytest.mark.parametrize("mapping, message", [
    ([1, 2], "v.json: expected a JSON object {token: id}, found list"),
    ({"<pad>": 0, "<unk>": 1, "<s>": 2}, "v.json: the reserved token '</s>' must have id 3 (found None)"),
    ({"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": 5}, "v.json: ids must run from 0 to 4 without gaps; 4 is unused"),
    ({"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": 3}, "v.json: tokens '</s>' and 'a' share id 3"),
    ({"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": "4"}, "v.json: token 'a' has id '4': ids are integers >= 0"),
])
def test_a_bad_vocabulary_names_the_file_and_entry(mapping, message):
    with pytest.raises(ClientError) as info:
        Vocabulary(mapping, "v.json")
    assert info.value.message.startswith(message), info.value.message


def test_vocabulary_maps_unknown_tokens_and_prints_no_reserved_ones():
    v = Vocabulary.build(["b a b", "c"])
    assert v.token_ids == {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "b": 4, "a": 5, "c": 6}
    assert v.ids("a  zz b\n") == [5, 1, 4] and v.text([5, 1, 4, 3, 0]) == "a <unk> b"


def test_records_load_truncate_and_drop_a_trailing_eos(tmp_path):
    path = tmp_path / "a.rec"
    path.write_bytes(sdk_records(["w1 w2 w3", "w4"], ["w3 w2 w1", "w4"], SV, TV) + pairs_to_recordio([([5, 6], [7, EOS])]))
    pairs = read_pairs([path], "train", len(SV), len(TV), max_source=2, max_target=5)
    assert [s.tolist() for s in pairs.source] == [SV.ids("w1 w2"), SV.ids("w4"), [5, 6]]
    assert [t.tolist() for t in pairs.target] == [TV.ids("w3 w2 w1"), TV.ids("w4"), [7]]
    assert pairs.truncated == 1 and pairs.skipped == 0


@pytest.mark.parametrize("payload, message", [
    (record_bytes([4, 5], [4, 99]), "Channel 'train': a.rec record 1: field features[\"target\"] value 1 is id 99, "
                                    "outside the target vocabulary (ids 0 to 23)"),
    (record_bytes([4, -1], [4]), "Channel 'train': a.rec record 1: field features[\"source\"] value 1 is id -1"),
    (record_bytes([4, 5], None), "Channel 'train': a.rec record 1: field features[\"target\"] is missing"),
    (record_bytes([4, 0, 5], [4]), "Channel 'train': a.rec record 1: field features[\"source\"] holds the padding id 0"),
])
def test_a_bad_record_names_the_file_record_and_field(tmp_path, payload, message):
    from smalgos.formats.recordio import frame

    path = tmp_path / "a.rec"
    path.write_bytes(frame(record_bytes([4], [4])) + frame(payload))
    with pytest.raises(ClientError) as info:
        read_pairs([path], "train", len(SV), len(TV), 100, 100)
    assert info.value.message.startswith(message), info.value.message


def test_a_float_tensor_is_refused_by_name(tmp_path):
    from smalgos.formats.record_pb2 import Record
    from smalgos.formats.recordio import frame

    record = Record()
    record.features["source"].float32_tensor.values.extend([4.0])
    record.features["target"].int32_tensor.values.extend([4])
    (tmp_path / "a.rec").write_bytes(frame(record.SerializeToString()))
    with pytest.raises(ClientError, match=re.escape('a.rec record 0: field features["source"] is float32_tensor; '
                                                    "expected an int32_tensor")):
        read_pairs([tmp_path / "a.rec"], "train", 30, 30, 100, 100)


def test_buckets_follow_sockeye():
    assert parallel_buckets(30, 30, 10, 1.0) == [(10, 10), (20, 20), (30, 30)]
    assert parallel_buckets(30, 60, 10, 2.0) == [(5, 10), (10, 20), (15, 30), (20, 40), (25, 50), (30, 60)]
    assert parallel_buckets(30, 30, 10, 1.0, enabled=False) == [(30, 30)]


@pytest.mark.parametrize("drop, message", [
    ("vocab", "ClientError: Missing required channel: vocab"),
    ("vocab.trg.json", "ClientError: Channel 'vocab': vocab.trg.json not found in"),
])
def test_missing_channel_or_vocabulary_file_is_a_client_error(tmp_path, drop, message):
    given = {k: v for k, v in files(reversal(20, 3), reversal(5, 4)).items() if drop not in k}
    channels = {k: v for k, v in CHANNELS.items() if k != drop}
    job, rc = train_job(tmp_path, SMALL, channels, given)
    assert rc == 1 and job.failure.startswith(message), job.failure


def test_two_hosts_are_refused(tmp_path):
    from smalgos.localjob import LocalJob

    job = LocalJob(tmp_path)
    job.write_config(SMALL, CHANNELS, resources={"current_host": "algo-1", "hosts": ["algo-1", "algo-2"],
                                                 "network_interface_name": "eth0"})
    for (ch, name), data in files(reversal(20, 3), reversal(5, 4)).items():
        job.add_file(ch, name, data)
    assert algo_helpers.run_training("seq2seq", job.paths, install_signal_handler=False) == 1
    assert job.failure.splitlines()[0] == ("ClientError: Seq2Seq trains on a single instance only; this job has 2 hosts "
                                           "(algo-1, algo-2): set instance_count=1"), job.failure


# -- the network ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["dot", "fixed", "mlp", "bilinear"])
def test_attention_shapes_and_no_weight_on_padding(kind):
    torch.manual_seed(0)
    att = Attention(kind, query_dim=6, key_dim=8, num_hidden=5)
    keys = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    context, weights = att(torch.randn(2, 3, 6), keys, mask)
    assert context.shape == (2, 3, 8) and weights.shape == (2, 3, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert (weights[0, :, 3] == 0).all() and (weights[1, :, 2:] == 0).all()
    if kind == "fixed":
        torch.testing.assert_close(weights[1, 0, :2], torch.tensor([0.5, 0.5]))
    keys2 = keys.clone()
    keys2[0, 3] = 100.0  # what a padded position holds changes nothing
    torch.testing.assert_close(att(torch.zeros(2, 3, 6), keys2, mask)[1][0], att(torch.zeros(2, 3, 6), keys, mask)[1][0])


def test_cnn_shapes_and_a_causal_decoder():
    torch.manual_seed(0)
    enc = CNNEncoder(30, 8, 12, 16, num_layers=2, kernel=3, activation="glu", embed_dropout=0, hidden_dropout=0)
    dec = CNNDecoder(25, 8, 12, 16, num_layers=2, kernel=5, activation="relu", memory_dim=16, embed_dropout=0,
                     hidden_dropout=0)
    src = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    memory = enc(src, src != 0)
    assert memory.shape == (2, 4, 16) and (memory[1, 2:] == 0).all()
    trg = torch.tensor([[2, 5, 6, 7, 8], [2, 9, 9, 9, 9]])
    logits, weights = dec(trg, memory, src != 0)
    assert logits.shape == (2, 5, 25) and weights.shape == (2, 5, 4) and (weights[1, :, 2:] == 0).all()
    changed = trg.clone()
    changed[:, 3:] = 4  # later tokens do not change earlier positions' outputs
    torch.testing.assert_close(dec(changed, memory, src != 0)[0][:, :3], logits[:, :3])


def _config(**kw):
    hp = HP.parse({"rnn_num_hidden": "16", "num_embed_source": "8", "num_embed_target": "8", "cnn_num_hidden": "16",
                   **kw})
    return network_config(hp, 30, 30)


@pytest.mark.parametrize("kw", [
    {}, {"rnn_cell_type": "gru", "rnn_attention_type": "dot", "rnn_decoder_state_init": "avg"},
    {"num_layers_encoder": "3", "num_layers_decoder": "3", "rnn_residual_connections": "true",
     "rnn_attention_type": "bilinear", "rnn_decoder_state_init": "zero"},
    {"num_layers_decoder": "2", "rnn_attention_in_upper_layers": "false", "rnn_attention_type": "fixed"},
    {"encoder_type": "cnn", "decoder_type": "cnn", "num_layers_encoder": "2", "num_layers_decoder": "2"},
    {"encoder_type": "cnn"}, {"decoder_type": "cnn"},
    {"encoder_type": "transformer", "decoder_type": "transformer", "transformer_model_size": "16",
     "transformer_attention_heads": "4", "transformer_feed_forward_num_hidden": "32", "transformer_dropout": "0",
     "num_layers_encoder": "2", "num_layers_decoder": "2"},
    {"encoder_type": "transformer", "transformer_model_size": "12", "transformer_attention_heads": "3"},
    {"decoder_type": "transformer", "transformer_model_size": "16", "transformer_attention_heads": "2"},
], ids=["lstm-mlp", "gru-dot-avg", "residual-3-layers", "no-upper-attention", "cnn", "cnn-rnn", "rnn-cnn",
        "transformer", "transformer-rnn", "rnn-transformer"])
def test_beam_of_one_is_greedy_and_decoding_matches_teacher_forcing(kw):
    net = build_network(_config(**kw), seed=1).eval()
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0], [11, 0, 0, 0]])
    memory, mask = net.encode(src)
    greedy = greedy_search(net.decoder, memory, mask, [6, 6, 6])
    beam = beam_search(net.decoder, memory, mask, 1, [6, 6, 6])
    assert [h.ids for h in greedy] == [h.ids for h in beam]
    assert [h.score for h in greedy] == pytest.approx([h.score for h in beam], abs=1e-5)
    assert [len(h.attention) for h in greedy] == [len(h.ids) for h in greedy]
    assert all(len(row) == n for h, n in zip(greedy, (4, 2, 1)) for row in h.attention)
    # the step-by-step decoder is the teacher-forced network
    h = greedy[0]
    trg_in = torch.tensor([[2] + h.ids])
    with torch.no_grad():
        logp = torch.log_softmax(net(src[:1], trg_in)[0], -1)[0]
    steps = h.ids + [EOS] if len(h.ids) < 6 else h.ids  # at the cap </s> is forced, at no cost
    total = sum(float(logp[t, tok]) for t, tok in enumerate(steps))
    assert h.score == pytest.approx(total / (len(h.ids) + 1), abs=1e-4)


class Crafted:
    """A decoder of fixed step probabilities: first A (0.6) or B (0.4); after A six tokens at 0.15
    and </s> at 0.1; after B </s> at 0.9; then </s>. Greedy takes A, then a 0.15 token (0.09 in
    all); beam search finds B </s> (0.36)."""

    A, B = 4, 5

    def start(self, memory, mask):
        return {"t": torch.zeros(memory.shape[0], dtype=torch.long)}

    def step(self, prev, state):
        p = torch.full((prev.shape[0], 12), 1e-6)
        t = int(state["t"][0])
        if t == 0:
            p[:, self.A], p[:, self.B] = 0.6, 0.4
        elif t == 1:
            after_b = prev == self.B
            p[after_b, EOS], p[after_b, 6] = 0.9, 0.1
            p[~after_b, 6:12], p[~after_b, EOS] = 0.15, 0.1
        else:
            p[:, EOS] = 1.0
        return p.log(), torch.ones(prev.shape[0], 1), {"t": state["t"] + 1}


def test_beam_search_finds_a_better_sequence_than_greedy():
    memory, mask = torch.zeros(2, 1, 1), torch.ones(2, 1, dtype=torch.bool)
    greedy = greedy_search(Crafted(), memory, mask, [3, 3])
    beam = beam_search(Crafted(), memory, mask, 3, [3, 3])
    assert greedy[0].ids == [Crafted.A, 6] and beam[0].ids == beam[1].ids == [Crafted.B]
    assert greedy[0].score == pytest.approx(math.log(0.6 * 0.15) / 3, abs=1e-4)
    assert beam[0].score == pytest.approx(math.log(0.4 * 0.9) / 2, abs=1e-4)
    assert beam[0].score > greedy[0].score


# -- learning-rate schedules ---------------------------------------------------------------------

def test_learning_rate_schedules():
    for schedule in (InverseTimeDecay(0.1, 50), InverseSqrtTimeDecay(0.1, 50)):
        assert schedule.rate(0) == 0.1 and schedule.rate(50) == pytest.approx(0.05)
        assert schedule.rate(10) > schedule.rate(20) > schedule.rate(1000) > 0
    plateau = PlateauReduce(1.0, 0.5, patience=2)
    assert [plateau.rate(i) for i in (True, False, False, False, True, False, False)] == [
        1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]
    with pytest.raises(ValueError):
        PlateauReduce(1.0, 1.5, 2)


# -- a training job through /opt/ml ----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        job, rc = train_job(tmp_path_factory.mktemp("seq2seq"), SMALL, CHANNELS, files())
    assert rc == 0, job.failure
    return job, out.getvalue()


def test_a_job_prints_metric_lines_the_declaration_scrapes(trained, caplog):
    job, out = trained
    for name in ("validation:perplexity", "validation:accuracy", "validation:bleu", "train:perplexity",
                 "train:throughput", "train:progress"):
        assert re.search(ALGO.metric(name).regex, out), name
    for name, best in (("validation:perplexity", min), ("validation:bleu", max)):
        values = [float(v) for v in re.findall(ALGO.metric(name).regex, out)]
        assert len(values) >= 4 and values[-1] == best(values[:-1])  # the last line is the best checkpoint's
    assert float(re.findall(ALGO.metric("validation:bleu").regex, out)[-1]) >= 90
    assert float(re.findall(ALGO.metric("validation:perplexity").regex, out)[-1]) < 1.2
    assert sorted(p.name for p in job.paths.model_dir.iterdir()) == sorted(FILES)
    meta = json.loads((job.paths.model_dir / META_FILE).read_text())
    assert meta["format"] == "smalgos-seq2seq" and meta["architecture"]["source_vocab_size"] == len(SV)


def test_the_gpu_note_is_logged_not_failed(tmp_path, caplog):
    caplog.set_level("INFO", logger="smalgos")
    with contextlib.redirect_stdout(io.StringIO()):
        job, rc = train_job(tmp_path, {**SMALL, "max_num_epochs": "1", "max_num_batches": "3", "bleu_sample_size": "5",
                                       "lr_scheduler_type": "fixed_rate_inv_sqrt_t", "optimizer_type": "sgd",
                                       "momentum": "0.9", "encoder_type": "cnn", "decoder_type": "cnn",
                                       "cnn_num_hidden": "16"},
                            CHANNELS, files(reversal(200, 3), reversal(10, 4)))
    assert rc == 0, job.failure
    note = [r for r in caplog.records if r.getMessage() == GPU_NOTE]
    assert note and note[0].levelname == "INFO"
    assert "Checkpoint [1] Epoch=1 Updates=3 " in caplog.text  # max_num_batches ends between checkpoints


def test_held_out_bleu_and_beam_search_not_below_greedy(trained):
    model = Seq2Seq.load(trained[0].paths.model_dir)
    held = pairs_of(*TEST, SV, TV)
    greedy, beam = model.bleu(held, beam_size=1), model.bleu(held, beam_size=5)
    # Measured: greedy 100.0, beam 100.0 (perplexity 1.01) after 376 updates of a 64-unit LSTM, ~12 s.
    assert greedy >= 90 and beam >= greedy - 1e-9, (greedy, beam)


def test_a_model_that_is_not_finite_is_refused(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    import shutil
    for name in FILES:
        shutil.copy(trained[0].paths.model_dir / name, tmp_path / name)
    tensors = load_file(str(tmp_path / MODEL_FILE))
    tensors["decoder.output.bias"][0] = math.nan
    save_file(tensors, str(tmp_path / MODEL_FILE))
    with pytest.raises(ClientError, match=r"Cannot load the Seq2Seq model in .*decoder\.output\.bias hold NaN"):
        serving_client(ALGO, tmp_path)
    model = Seq2Seq.load(tmp_path)
    with pytest.raises(ClientError, match="Refusing to save: the model's decoder.output.bias hold NaN"):
        model.save(tmp_path / "again")


# -- serving -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(trained):
    return serving_client(ALGO, trained[0].paths.model_dir)


def test_json_answers_with_the_attention_matrix_on_request(client):
    body = {"instances": [{"data": "w1 w2 w3 w4"},
                          {"data": "w5 w6 nosuchword", "configuration": {"attention_matrix": "true"}}]}
    r = client.post("/invocations", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200 and r.mimetype == "application/json", r.data
    answer = r.get_json()
    assert answer["predictions"][0] == {"target": "w4 w3 w2 w1"}
    second = answer["predictions"][1]
    assert sorted(second) == ["matrix", "target"]
    words = second["target"].split()
    matrix = np.array(second["matrix"])
    assert matrix.shape == (len(words), 3)
    np.testing.assert_allclose(matrix.sum(1), 1, rtol=1e-5)
    if words[:2] == ["<unk>", "w6"]:  # reversal attends to the mirrored source position
        assert matrix[0].argmax() == 2 and matrix[1].argmax() == 1


def test_jsonlines_and_sdk_recordio_round_trip(client):
    r = client.post("/invocations", data=b'{"source": "w7 w8 w9"}\n\n{"source": "w10 w11"}\n',
                    headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"})
    assert r.status_code == 200 and r.data == b'{"target": "w9 w8 w7"}\n{"target": "w11 w10"}\n', r.data
    from sagemaker.amazon.common import read_records

    sources = ["w1 w2 w3", "w12 w13 w14 w15 w16"]
    body = sdk_records(sources, ["", ""], SV, TV)  # the notebook's records: target empty
    r = client.post("/invocations", data=body, headers={"Content-Type": RECORDIO, "Accept": RECORDIO})
    assert r.status_code == 200 and r.mimetype == RECORDIO
    records = read_records(io.BytesIO(r.data))
    assert [TV.text(rec.features["target"].int32_tensor.values) for rec in records] == [
        " ".join(reversed(s.split())) for s in sources]
    assert all(list(rec.features) == ["target"] for rec in records)


@pytest.mark.parametrize("body, headers, status, message", [
    (b'{"instances": [{"data": "w1"}, {"text": "w2"}]}', {}, 400, 'instances[1]: field "data" is missing'),
    (b'{"instances": [{"data": 5}]}', {}, 400, "instances[0].data must be a string"),
    (b'{"instances": [{"data": "  "}]}', {}, 400, "instances[0].data holds no tokens"),
    (b'{"instances": [{"data": "w1", "configuration": {"attention_matrix": "yes"}}]}', {}, 400,
     "instances[0].configuration.attention_matrix must be \"true\" or \"false\""),
    (b'{"data": "w1"}', {}, 400, 'field "instances" (a list) is missing'),
    (b'{"instances": [', {}, 400, "Request body is not valid JSON"),
    (b'{"source": "w1"}\n{"src": "w2"}\n', {"Content-Type": "application/jsonlines"}, 400,
     'Request line 2: field "source" is missing'),
    (pairs_to_recordio([([4], []), ([4, 999], [])]), {"Content-Type": RECORDIO}, 400,
     'Request record 1: field features["source"] value 1 is id 999, outside the source vocabulary'),
    (b"w1 w2", {"Content-Type": "text/plain"}, 415, "text/plain"),
    (b'{"instances": [{"data": "w1"}]}', {"Accept": "text/csv"}, 406, "text/csv"),
])
def test_bad_requests_are_4xx_naming_the_field_and_serving_goes_on(client, body, headers, status, message):
    r = client.post("/invocations", data=body, headers={"Content-Type": "application/json", **headers})
    assert r.status_code == status and message in r.get_json()["message"], r.data
    assert sorted(r.get_json()) == ["error", "message"]
    ok = client.post("/invocations", data=b'{"instances": [{"data": "w1 w2"}]}', content_type="application/json")
    assert ok.get_json() == {"predictions": [{"target": "w2 w1"}]}


def test_a_notebook_fit_repeats_with_a_seed_and_unknown_words_are_unk():
    src, trg = reversal(300, 5, words=WORDS[:6])
    sv, tv = Vocabulary.build(src), Vocabulary.build(trg)
    kw = dict(rnn_num_hidden=16, num_embed_source=8, num_embed_target=8, max_num_batches=20, batch_size=16,
              checkpoint_frequency_num_batches=10, random_state=3)
    a = Seq2Seq(**kw).fit(pairs_of(src, trg, sv, tv), pairs_of(src[:20], trg[:20], sv, tv), sv, tv)
    b = Seq2Seq(**kw).fit(pairs_of(src, trg, sv, tv), pairs_of(src[:20], trg[:20], sv, tv), sv, tv)
    assert a.translate_text(src[:10]) == b.translate_text(src[:10])
    assert len(a.checkpoints_) == 2 and a.updates_ == 20
    with pytest.raises(ClientError, match="Hyperparameter rnn_num_hidden: value 15 must be even"):
        Seq2Seq(rnn_num_hidden=15)


def test_early_stopping_after_checkpoint_threshold_keeps_the_best_checkpoint():
    rng = np.random.default_rng(0)
    words = WORDS[:8]
    noise = lambda n: [" ".join(rng.choice(words, 4)) for _ in range(n)]  # noqa: E731  targets unrelated to sources
    src, trg, vsrc, vtrg = noise(64), noise(64), noise(32), noise(32)
    sv, tv = Vocabulary.build(src + vsrc), Vocabulary.build(trg + vtrg)
    held = pairs_of(vsrc, vtrg, sv, tv)
    model = Seq2Seq(rnn_num_hidden=32, num_embed_source=16, num_embed_target=16, batch_size=16, learning_rate=0.02,
                    checkpoint_frequency_num_batches=4, checkpoint_threshold=2, min_num_epochs=3,
                    max_num_batches=2000).fit(pairs_of(src, trg, sv, tv), held, sv, tv)
    seen = [c.validation["perplexity"] for c in model.checkpoints_]
    best = int(np.argmin(seen))
    # Measured: memorising noise, the validation perplexity turns up after a few checkpoints.
    assert model.updates_ < 2000 and len(seen) == best + 3 and model.checkpoints_[-1].epoch >= 4
    assert model.evaluate(held)["perplexity"] == pytest.approx(seen[best], rel=1e-6)  # the best weights, not the last
