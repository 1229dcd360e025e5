"""IP Insights end to end through the /opt/ml contract (File and Pipe mode), its serving bodies, and
the maths core on login events generated the way AWS's example generates them."""
import functools
import json
import re

import numpy as np
import pytest
import torch

import algo_helpers
from algo_helpers import serving_client
from smalgos.declaration import load_algorithm
from smalgos.errors import ClientError, InputError, NotFittedError
from smalgos.formats.media import parse_media_type
from smalgos.maths.ranking import separation_auc
from smalgos_ipinsights.model import META_FILE, MODEL_FILE, IPInsights
from smalgos_ipinsights.records import pairs_of, parse_address, prefix_buckets
from smalgos_ipinsights.serve import IPInsightsModel, load_model
from smalgos_ipinsights.synthetic import csv_lines, dotted, login_events

ALGO = load_algorithm("ipinsights")
CSV_CHANNELS = {"train": {"ContentType": "text/csv"}, "validation": {"ContentType": "text/csv"}}
SMALL = {"num_entity_vectors": 400, "vector_dim": 8, "epochs": 2, "mini_batch_size": 64, "learning_rate": 0.01,
         "batch_metrics_publish_interval": 3}
train_job = functools.partial(algo_helpers.train_job, "ipinsights")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Two shared cores: torch's thread pool spinning against other processes costs 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def log():
    who, addresses, _, _ = login_events(n_users=40, n_asns=100, max_events=40, seed=2)
    return csv_lines(who, addresses)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, log):
    job, rc = train_job(tmp_path_factory.mktemp("ipi"), SMALL, CSV_CHANNELS,
                        {("train", "a.csv"): log, ("validation", "v.csv"): log})
    assert rc == 0, job.failure
    return job


@pytest.fixture(scope="module")
def client(trained):
    return serving_client(ALGO, trained.paths.model_dir)


# -- declaration -------------------------------------------------------------------------------

def test_aws_defaults_and_metric_regexes():
    assert ALGO.hyperparameters.parse({}) == {
        "num_entity_vectors": 100000, "vector_dim": 128, "batch_metrics_publish_interval": 1000, "epochs": 10,
        "learning_rate": 0.001, "mini_batch_size": 5000, "num_ip_encoder_layers": 1,
        "random_negative_sampling_rate": 1, "shuffled_negative_sampling_rate": 1, "weight_decay": 0.00001}
    assert ALGO.metric("validation:discriminator_auc").regex == (
        r"#quality_metric: host=\S+, epoch=\S+, validation discriminator_auc <score>=(\S+)")
    assert ALGO.metric("train:binary_classification_accuracy").regex == (
        r"#quality_metric: host=\S+, epoch=\S+, batch=\S+ train binary_classification_accuracy <score>=(\S+)")
    assert ALGO.metric("train:binary_classification_cross_entropy:epoch").regex == (
        r"#quality_metric: host=\S+, epoch=\S+, train binary_classification_cross_entropy <loss>=(\S+)")
    assert [m.name for m in ALGO.metrics if m.tunable] == ["validation:discriminator_auc"]


@pytest.mark.parametrize("hps, fragment", [
    ({"vector_dim": "2"}, "Hyperparameter vector_dim: value 2 is outside the range [4, 4096]"),
    ({"mini_batch_size": "500001"}, "Hyperparameter mini_batch_size: value 500001 is outside"),
    ({"random_negative_sampling_rate": "0", "shuffled_negative_sampling_rate": "0"},
     "random_negative_sampling_rate (0) + shuffled_negative_sampling_rate (0) = 0 must lie in [1, 500]"),
    ({"random_negative_sampling_rate": "300", "shuffled_negative_sampling_rate": "201"}, "= 501 must lie in"),
    ({"learning_rate": "11"}, "Hyperparameter learning_rate: value 11 is outside the range"),
    ({"_kfol": "1"}, "Unknown hyperparameter: _kfol"),
])
def test_bad_hyperparameters_are_client_errors_naming_them(hps, fragment):
    with pytest.raises(ClientError) as info:
        ALGO.hyperparameters.parse(hps)
    assert fragment in info.value.message


def test_what_the_sdk_and_aws_default_config_send_is_accepted():
    sent = algo_helpers.sdk_hyperparameters("IPInsights", feature_dim=2, mini_batch_size=100,
                                            num_entity_vectors=10, vector_dim=8)
    hidden = {"_kvstore": "auto_gpu", "_log_level": "info", "_num_gpus": "auto", "_num_kv_servers": "auto",
              "_tuning_objective_metric": ""}
    parsed = ALGO.hyperparameters.parse({**sent, **hidden})
    assert (parsed["num_entity_vectors"], parsed["vector_dim"], parsed["mini_batch_size"]) == (10, 8, 100)


# -- reading pairs -----------------------------------------------------------------------------

def test_ipv4_ipv6_and_their_mapped_forms():
    assert parse_address("10.0.0.1") == parse_address("::ffff:10.0.0.1") == (0, 0xFFFF0A000001)
    assert parse_address("2001:db8::1") == (0x20010DB800000000, 1)
    for bad in ("10.0.0", "256.0.0.1", "01.2.3.4", "10.0.0.1.2", "host.example", "", "2001:db8::g"):
        assert parse_address(bad) is None, bad
    pairs = pairs_of([("u", "10.1.2.3"), ("u", "10.1.2.200"), ("u", "10.9.2.3"), ("u", "2001:db8:1::5")])
    rows = prefix_buckets(pairs.hi, pairs.lo, 1 << 30)
    # the /8, /16, /24 of two addresses of one /24 are shared; /32 is not; one /8 only for 10.9.x
    assert (rows[0, :3] == rows[1, :3]).all() and rows[0, 3] != rows[1, 3]
    assert rows[0, 0] == rows[2, 0] and rows[0, 1] != rows[2, 1]
    assert not set(rows[3]) & set(rows[:3].ravel())


@pytest.mark.parametrize("body, first_line", [
    (b"user_1,10.0.0.1\nuser_2,10.0.0\n", "ClientError: Channel 'train': {}: line 2: '10.0.0' is not an IPv4 or IPv6 address"),
    (b"user_1,10.0.0.1\n\n , 10.0.0.2\n", "ClientError: Channel 'train': {}: line 3: the entity (first field) is empty"),
    (b"user_1,10.0.0.1,7\n", "ClientError: Channel 'train': {}: line 1 has 3 field(s): expected 2, entity,ip"),
    (b"user_1,10.0.0.1\nu\xff,10.0.0.1\n", "ClientError: Channel 'train': {}: line 2 is not UTF-8 text"),
    (b"\n\n", "ClientError: Channel 'train' holds no records"),
])
def test_bad_training_lines_name_file_and_line(tmp_path, body, first_line):
    job, rc = train_job(tmp_path, SMALL, {"train": {"ContentType": "text/csv"}}, {("train", "bad.csv"): body})
    assert rc == 1
    assert job.failure.splitlines()[0] == first_line.format(job.paths.channel_dir("train") / "bad.csv")


def test_quoted_entities_bom_spaces_and_crlf_read_as_aws_writes_them():
    from smalgos_ipinsights.records import parse_csv

    pairs = parse_csv(b'\xef\xbb\xbf"smith, j",  192.168.1.2\r\nentity_id_2, 10.10.1.2\r\n')
    same = pairs_of([("smith, j", "192.168.1.2"), ("entity_id_2", "10.10.1.2")])
    for field in ("entity", "hi", "lo"):
        np.testing.assert_array_equal(getattr(pairs, field), getattr(same, field))


# -- training through /opt/ml ------------------------------------------------------------------

def test_file_job_prints_aws_metric_lines_and_writes_safe_files(trained, tmp_path, capfd, log):
    job, rc = train_job(tmp_path, SMALL, CSV_CHANNELS, {("train", "a.csv"): log, ("validation", "v.csv"): log})
    assert rc == 0, job.failure
    out = capfd.readouterr().out
    aucs = [float(v) for v in re.findall(ALGO.metric("validation:discriminator_auc").regex, out)]
    assert len(aucs) == 2 and 0.5 < aucs[-1] <= 1.0
    for name in ("train:binary_classification_accuracy", "train:binary_classification_cross_entropy"):
        assert len(re.findall(ALGO.metric(name).regex, out)) >= 2, name
        assert len(re.findall(ALGO.metric(name + ":epoch").regex, out)) == 2, name
    assert re.search(ALGO.metric("train:throughput").regex, out) and '"Algorithm": "AWS/IPInsights"' in out
    assert sorted(p.name for p in job.paths.model_dir.iterdir()) == [META_FILE, MODEL_FILE]
    meta = json.loads((job.paths.model_dir / META_FILE).read_text())
    assert meta["format"] == "smalgos-ipinsights" and meta["vector_dim"] == 8


def test_pipe_mode_trains_the_same_model_as_file_mode(trained, tmp_path, log):
    job, rc = train_job(tmp_path, SMALL, {"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}},
                        {}, pipe=("train", log, SMALL["epochs"]))
    assert rc == 0, job.failure
    probe = pairs_of([("user_1", "1.2.3.4"), ("user_7", "10.0.0.1"), ("nobody", "2001:db8::1")])
    np.testing.assert_array_equal(load_model(job.paths.model_dir).estimator.dot_product(probe),
                                  load_model(trained.paths.model_dir).estimator.dot_product(probe))


# -- serving -----------------------------------------------------------------------------------

def _expected(trained, pairs):
    return load_model(trained.paths.model_dir).estimator.embeddings(pairs_of(pairs))


def _floats(values) -> str:
    return ", ".join(str(np.float32(v)) if not float(v).is_integer() else f"{float(v):.1f}" for v in values)


def test_csv_request_json_response_is_exact(client, trained):
    dot = _expected(trained, [("user_1", "192.168.1.2"), ("user_2", "10.10.1.2")])[0]
    r = client.post("/invocations", data=b"user_1, 192.168.1.2\nuser_2, 10.10.1.2\n",
                    headers={"Content-Type": "text/csv", "Accept": "application/json"})
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.data.decode() == '{"predictions": [{"dot_product": %s}, {"dot_product": %s}]}' % tuple(
        _floats([d]) for d in dot)
    np.testing.assert_array_equal(np.float32([p["dot_product"] for p in json.loads(r.data)["predictions"]]), dot)


def test_json_instances_verbose_jsonlines_response(client, trained):
    body = {"instances": [{"data": {"features": {"values": ["entity_id_1", "192.168.1.2"]}}},
                          {"features": ["entity_id_2", "10.10.1.2"]}]}
    dot, ip, ent = _expected(trained, [("entity_id_1", "192.168.1.2"), ("entity_id_2", "10.10.1.2")])
    r = client.post("/invocations", data=json.dumps(body),
                    headers={"Content-Type": "application/json", "Accept": "application/jsonlines; verbose=True"})
    assert r.status_code == 200 and r.mimetype == "application/jsonlines"
    lines = r.data.decode().splitlines()
    assert len(lines) == 2
    for i, line in enumerate(lines):
        assert line == ('{"dot_product": %s, "ip_embedding": [%s], "entity_embedding": [%s]}'
                        % (_floats([dot[i]]), _floats(ip[i]), _floats(ent[i])))
    assert len(json.loads(lines[0])["ip_embedding"]) == SMALL["vector_dim"]


def test_jsonlines_request_and_plain_accept(client, trained):
    dot = _expected(trained, [("a", "10.0.0.1"), ("b", "2001:db8::1")])[0]
    r = client.post("/invocations", data=b'{"features": ["a", "10.0.0.1"]}\n\n{"data": {"features": {"values": '
                                          b'["b", "2001:db8::1"]}}}\n', headers={"Content-Type": "application/jsonlines"})
    assert r.status_code == 200
    np.testing.assert_array_equal(np.float32([p["dot_product"] for p in r.get_json()["predictions"]]), dot)


@pytest.mark.parametrize("content_type, body, status, fragment", [
    ("text/csv", b"a,10.0.0.1\nb,300.1.1.1\n", 400, "request body: line 2: '300.1.1.1' is not an IPv4 or IPv6"),
    ("text/csv", b"a,10.0.0.1\n,10.0.0.2\n", 400, "request body: line 2: the entity (first field) is empty"),
    ("application/json", b'{"instances": [{"features": ["a", "10.0.0.1"]}, {"features": ["b"]}]}', 400,
     "request body: instance 1: 1 feature value(s): expected 2, [entity, ip]"),
    ("application/json", b'{"instances": [{"features": ["a", 167772161]}]}', 400,
     "instance 0: the IP address must be a string, got 167772161"),
    ("application/jsonlines", b'{"features": ["a", "10.0.0.1"]}\n{"features": \n', 400,
     "request body: line 2: not valid JSON"),
    ("application/x-recordio-protobuf", b"\x00", 415, "content type 'application/x-recordio-protobuf' is not supported"),
    ("text/csv; charset=latin-1", b"a,10.0.0.1\n", 415, "only utf-8 is read"),
])
def test_bad_requests_name_what_is_wrong(client, content_type, body, status, fragment):
    r = client.post("/invocations", data=body, headers={"Content-Type": content_type})
    assert r.status_code == status, r.data
    assert fragment in r.get_json()["message"]


@pytest.mark.parametrize("accept, status", [("text/csv", 406), ("application/json; verbose=maybe", 400),
                                            ("application/x-recordio-protobuf", 406)])
def test_accepts_aws_does_not_write_are_refused(client, accept, status):
    r = client.post("/invocations", data=b"a,10.0.0.1\n", headers={"Content-Type": "text/csv", "Accept": accept})
    assert r.status_code == status, r.data


# -- the maths core ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aws_process():
    """AWS's login-event process (synthetic ASN table): a log, and held-out events of its users."""
    who, addresses, table, users = login_events(n_users=300, n_asns=600, max_events=300, seed=1)
    rng = np.random.default_rng(11)
    probe = rng.choice(who, 4000)
    usual = users.events(probe, table, rng)
    names = [f"user_{u}" for u in probe.tolist()]
    return {"train": list(zip([f"user_{u}" for u in who.tolist()], dotted(addresses))),
            "usual": list(zip(names, dotted(usual))),
            "random_asn": list(zip(names, dotted(table.address(rng.integers(0, len(table), len(probe)), rng)))),
            "other_users": list(zip(names, dotted(usual[rng.permutation(len(probe))])))}


@pytest.fixture(scope="module")
def fitted(aws_process):
    return IPInsights(num_entity_vectors=1000, vector_dim=32, epochs=4, mini_batch_size=1000,
                      learning_rate=0.01, random_negative_sampling_rate=2).fit(aws_process["train"])


@pytest.mark.parametrize("anomalies", ["random_asn", "other_users"])
def test_seen_behaviour_is_told_from_anomalous_pairs(fitted, aws_process, anomalies):
    """The issue's proof: AUC >= 0.9 separating users' usual pairs from anomalous ones."""
    auc = separation_auc(fitted.dot_product(aws_process["usual"]), fitted.dot_product(aws_process[anomalies]))
    assert auc >= 0.9, auc
    assert fitted.discriminator_auc(aws_process["usual"]) >= 0.9


def test_save_load_and_a_fixed_seed_repeat_the_model(tmp_path, aws_process):
    data = aws_process["train"][:3000]
    a = IPInsights(num_entity_vectors=300, vector_dim=8, epochs=1, mini_batch_size=500, random_state=7).fit(data)
    b = IPInsights(num_entity_vectors=300, vector_dim=8, epochs=1, mini_batch_size=500, random_state=7).fit(data)
    np.testing.assert_array_equal(a.dot_product(data[:50]), b.dot_product(data[:50]))
    a.save(tmp_path)
    served = load_model(tmp_path)
    np.testing.assert_array_equal(served.predict(pairs_of(data[:50])).fields["dot_product"], a.dot_product(data[:50]))


def test_ip_encoder_layers_zero_and_several(aws_process):
    for layers in (0, 3):
        est = IPInsights(num_entity_vectors=300, vector_dim=8, epochs=1, mini_batch_size=500,
                         num_ip_encoder_layers=layers).fit(aws_process["train"][:2000])
        assert len(est.net_.encoder) == layers and np.isfinite(est.dot_product(aws_process["usual"][:10])).all()


def test_not_fitted_non_finite_and_bad_pairs(tmp_path, aws_process):
    est = IPInsights(num_entity_vectors=300, vector_dim=8)
    with pytest.raises(NotFittedError, match="This IPInsights is not fitted yet"):
        IPInsightsModel(est).predict(pairs_of([("a", "10.0.0.1")]))
    with pytest.raises(InputError, match=r"X: row 1: 'x' is not an IPv4 or IPv6 address"):
        est.fit([("a", "10.0.0.1"), ("b", "x")])
    est.fit(aws_process["train"][:500])
    next(iter(est.model_arrays().values())).flat[0] = np.nan
    with pytest.raises(InputError, match="the model's entity.weight hold NaN"):
        est.check_finite_model("fitted")
    est.save(tmp_path)
    with pytest.raises(ClientError, match="Cannot load the IP Insights model in .*: the model's entity.weight hold NaN"):
        load_model(tmp_path)


def test_verbose_accept_parameter_is_case_insensitive():
    est = IPInsights(num_entity_vectors=50, vector_dim=4, epochs=1).fit([("a", "10.0.0.1"), ("b", "10.0.0.2")])
    model = IPInsightsModel(est)
    pairs = model.decode(b"a,10.0.0.1\n", parse_media_type("text/csv"))
    assert list(model.predict(pairs, parse_media_type("application/json; verbose=true")).fields) == [
        "dot_product", "ip_embedding", "entity_embedding"]
    assert list(model.predict(pairs, parse_media_type("application/json; verbose=False")).fields) == ["dot_product"]
