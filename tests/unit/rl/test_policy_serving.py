"""RL policies: saved without pickle (smalgos_rl.policy), served through the kit's app
(smalgos_rl.serve), plain and in script mode. Tiny torch networks with chosen weights give exact
bodies; Ray is not needed (save_rllib_policy runs on an RLModule look-alike)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from smalgos.declaration import load_algorithm
from smalgos.environment import ScriptModeEnv, ServingEnv
from smalgos.errors import ClientError
from smalgos.serving.app import create_app
from smalgos.serving.server import load_model, warm_up

torch = pytest.importorskip("torch")
from smalgos.scriptmode.serving import load_script_model  # noqa: E402
from smalgos_rl import serve  # noqa: E402
from smalgos_rl.policy import (MLP_FILE, POLICY_FILE, Q_TABLE_FILE, load_policy, save_q_table,  # noqa: E402
                               save_rllib_policy, save_torch_policy)

JSON, JSONL, CSV = "application/json", "application/jsonlines", "text/csv"
VERBOSE = "application/json; verbose=true"


def linear(weight, bias=None) -> "torch.nn.Linear":
    weight = torch.tensor(weight, dtype=torch.float32)
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


@pytest.fixture(scope="module")
def logits_dir(tmp_path_factory):
    """Logits = the observation itself (2 actions)."""
    model_dir = tmp_path_factory.mktemp("logits") / "model"
    save_torch_policy(linear([[1, 0], [0, 1]], [0, 0]), model_dir, [2], {"type": "discrete", "n": 2}, "logits")
    return model_dir


@pytest.fixture(scope="module")
def box_dir(tmp_path_factory):
    """Actions [2x, -3x] for a one-number observation, clipped to [-1, 1]."""
    model_dir = tmp_path_factory.mktemp("box") / "model"
    save_torch_policy(linear([[2], [-3]]), model_dir, [1],
                      {"type": "box", "shape": [2], "low": [-1, -1], "high": [1, 1]}, "actions")
    return model_dir


@pytest.fixture(scope="module")
def q_dir(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("q") / "model"
    save_q_table(np.array([[0, 1.5], [2.25, -1], [0.1, 0.2]]), model_dir)
    return model_dir


def client(model_dir):
    """The kit's app over the model the rl declaration's model_loader loads (warmed up, as a worker)."""
    algorithm = load_algorithm("rl")
    model = load_model(algorithm, model_dir)
    warm_up(model, model_dir)
    return create_app(algorithm, model, ServingEnv.from_env({})).test_client()


def post(c, body, content_type=JSON, accept=None):
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    return c.post("/invocations", data=body if isinstance(body, (bytes, str)) else json.dumps(body), headers=headers)


# ---- answers ------------------------------------------------------------------------------------

def test_json_answers_actions_and_with_verbose_probabilities(logits_dir):
    c = client(logits_dir)
    r = post(c, {"instances": [[0, 1], [2, 0]]})
    assert r.status_code == 200 and r.mimetype == JSON
    assert r.data == b'{"predictions": [{"action": 1}, {"action": 0}]}'
    r = post(c, {"instances": [[0, 1], [2, 0]]}, accept=VERBOSE)
    assert r.status_code == 200 and r.mimetype == JSON
    assert r.data == (b'{"predictions": [{"action": 1, "probabilities": [0.2689414, 0.7310586]},'
                      b' {"action": 0, "probabilities": [0.880797, 0.11920292]}]}')


@pytest.mark.parametrize("body", [{"observations": [[0, 1]]}, [[0, 1]], {"observation": [0, 1]}, [0, 1]])
def test_every_json_request_form(logits_dir, body):
    r = post(client(logits_dir), body)
    assert r.status_code == 200, r.data
    assert r.data == b'{"predictions": [{"action": 1}]}'


def test_json_lines_in_and_out(logits_dir):
    c = client(logits_dir)
    body = b'[0, 1]\n\n{"observation": [2, 0]}\n'
    r = post(c, body, JSONL, JSONL)
    assert r.status_code == 200 and r.mimetype == JSONL
    assert r.data == b'{"action": 1}\n{"action": 0}\n'
    r = post(c, body, JSONL, "application/jsonlines; verbose=true")
    assert r.data == (b'{"action": 1, "probabilities": [0.2689414, 0.7310586]}\n'
                      b'{"action": 0, "probabilities": [0.880797, 0.11920292]}\n')


def test_csv_in_and_out(logits_dir):
    r = post(client(logits_dir), b"0,1\n2,0\n", CSV, CSV)
    assert r.status_code == 200 and r.mimetype == CSV
    assert r.data == b"1\n0\n"


def test_box_actions_are_lists_clipped_to_the_space(box_dir):
    c = client(box_dir)
    r = post(c, {"instances": [[0.25], [1.0]]}, accept=VERBOSE)  # verbose adds nothing to box actions
    assert r.status_code == 200
    assert r.data == b'{"predictions": [{"action": [0.5, -0.75]}, {"action": [1.0, -1.0]}]}'
    r = post(c, b"0.25\n-1\n", CSV, CSV)
    assert r.data == b"0.5,-0.75\n-1.0,1.0\n"


def test_q_table_serving(q_dir):
    c = client(q_dir)
    r = post(c, {"instances": [0, 1, 2]}, accept=VERBOSE)
    assert r.status_code == 200
    assert r.data == (b'{"predictions": [{"action": 1, "q_values": [0.0, 1.5]},'
                      b' {"action": 0, "q_values": [2.25, -1.0]}, {"action": 1, "q_values": [0.1, 0.2]}]}')
    assert post(c, b"2\n1\n", CSV, CSV).data == b"1\n0\n"
    assert post(c, b"1\n[2]\n", JSONL, JSONL).data == b'{"action": 0}\n{"action": 1}\n'
    assert post(c, {"observation": 1}).data == b'{"predictions": [{"action": 0}]}'


@pytest.mark.parametrize("body,where", [({"instances": [0, 1.5]}, "instance 1"), ({"instances": [2, 3]}, "instance 1"),
                                        ({"instances": [-1]}, "instance 0"), ({"instances": [0, "a"]}, "instance 1"),
                                        ({"instances": [True]}, "instance 0"), (b"0\n1.5\n", "row 2"),
                                        (b"[0]\n[0, 1]\n", "line 2")])
def test_a_state_that_is_not_an_integer_in_range_is_a_400_naming_the_record(q_dir, body, where):
    content_type = JSON if not isinstance(body, bytes) else JSONL if body.startswith(b"[") else CSV
    r = post(client(q_dir), body, content_type)
    assert r.status_code == 400, r.data
    message = r.get_json()["message"]
    assert where in message and "integer in [0, 3)" in message


# ---- requests refused ---------------------------------------------------------------------------

def test_a_csv_row_of_another_width_is_a_400_naming_the_row_and_the_width(logits_dir):
    r = post(client(logits_dir), b"1,2,3\n4,5,6\n", CSV)
    assert r.status_code == 400
    assert r.get_json()["message"] == ("request body: row 1: an observation of shape [3] (3 values); the policy takes"
                                       " observations of shape [2] (2 values)")


@pytest.mark.parametrize("body,content_type,fragment", [
    ({"instances": [[0, 1], [0, 1, 2]]}, JSON, "instance 1: an observation of shape [3]"),
    ({"instances": [[0, 1], ["a", 1]]}, JSON, "instance 1: an observation must be a (nested) list of numbers"),
    (b'{"instances": [[0, 1]', JSON, "request body: not valid JSON"),
    (b"[0, 1]\n[0, 1\n", JSONL, "request body: line 2: not valid JSON"),
    (b'{"obs": [0, 1]}', JSON, 'expected {"instances"'),
    (b"nan,1\n", CSV, "request body: row 1: observation values must be finite"),
    (b"0,x\n", CSV, "line 1, column 2: 'x' is not a number"),
])
def test_malformed_requests_are_400s_saying_what_is_wrong(logits_dir, body, content_type, fragment):
    r = post(client(logits_dir), body, content_type)
    assert r.status_code == 400, r.data
    assert fragment in r.get_json()["message"]


def test_the_http_contract_around_the_policy(logits_dir):
    c = client(logits_dir)
    assert post(c, {"instances": [[0, 1]]}, accept="image/png").status_code == 406
    assert post(c, b"0,1", "image/png").status_code == 415
    assert post(c, {"instances": [[0, 1]]}, accept="application/json; verbose=maybe").status_code == 400
    r = post(c, {"instances": []})
    assert r.status_code == 400 and "no records" in r.get_json()["message"]


# ---- saving and loading -------------------------------------------------------------------------

def test_a_network_that_is_not_finite_is_never_saved(tmp_path):
    with pytest.raises(ValueError, match=MLP_FILE):
        save_torch_policy(linear([[float("nan"), 0], [0, 1]], [0, 0]), tmp_path, [2], {"type": "discrete", "n": 2},
                          "logits")
    with pytest.raises(ValueError, match=Q_TABLE_FILE):
        save_q_table(np.array([[0, np.inf]]), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_module_that_is_not_a_chain_of_layers_is_refused_naming_the_op(tmp_path):
    class Conv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 2, 3)

        def forward(self, x):
            return self.conv(x[:, None, :]).amax(-1)

    with pytest.raises(ValueError, match=r"unsupported op aten\.\w+"):
        save_torch_policy(Conv(), tmp_path, [5], {"type": "discrete", "n": 2}, "logits")
    with pytest.raises(ValueError, match=r"shape \[N, 2\] but the action space needs \[N, 3\]"):
        save_torch_policy(linear([[1, 0], [0, 1]]), tmp_path, [2], {"type": "discrete", "n": 3}, "logits")
    assert not (tmp_path / POLICY_FILE).exists()


def test_missing_or_bad_files_are_client_errors_naming_them(tmp_path, logits_dir, q_dir):
    with pytest.raises(ClientError, match=f"{POLICY_FILE} is missing"):
        load_policy(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / POLICY_FILE).write_bytes((logits_dir / POLICY_FILE).read_bytes())
    with pytest.raises(ClientError, match=f"{MLP_FILE} is missing"):
        load_policy(model)
    (model / MLP_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ClientError, match=f"{MLP_FILE}: not a readable safetensors file"):
        load_policy(model)
    (model / POLICY_FILE).write_text("{")
    with pytest.raises(ClientError, match=f"{POLICY_FILE} is not valid JSON"):
        load_policy(model)
    meta = json.loads((q_dir / POLICY_FILE).read_text())
    (model / POLICY_FILE).write_text(json.dumps(meta))
    np.save(model / Q_TABLE_FILE, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # a pickle: never read
    with pytest.raises(ClientError, match=f"{Q_TABLE_FILE}: not a numeric .npy array"):
        load_policy(model)
    np.save(model / Q_TABLE_FILE, np.zeros((3, 5)))
    with pytest.raises(ClientError, match=rf"{Q_TABLE_FILE}: an array of shape \[3, 5\]"):
        load_policy(model)
    (model / POLICY_FILE).write_text(json.dumps({**meta, "format": "torch.export"}))
    with pytest.raises(ClientError, match=f"{POLICY_FILE}: 'format' is 'torch.export'"):
        load_policy(model)


def test_a_deeper_network_round_trips_through_the_app(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                              torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
    save_torch_policy(net, tmp_path, [4], {"type": "discrete", "n": 3}, "q_values")
    assert net.training  # the trainer's module is left as it was
    obs = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    r = post(client(tmp_path), {"instances": obs.tolist()}, accept=VERBOSE)
    assert r.status_code == 200
    got = r.get_json()["predictions"]
    with torch.no_grad():
        q = net.eval()(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose([g["q_values"] for g in got], q, rtol=1e-5, atol=1e-6)
    assert [g["action"] for g in got] == q.argmax(1).tolist()


class FakeRLModule(torch.nn.Module):
    """What save_rllib_policy reads of an RLlib RLModule: forward_inference under no_grad, an
    encoder and a pi head; for a Box, mean and clipped log-std concatenated (as RLlib's PPO)."""

    def __init__(self, obs_dim: int, action_space):
        super().__init__()
        self.observation_space = SimpleNamespace(shape=(obs_dim,), low=np.full(obs_dim, -1.0),
                                                 high=np.full(obs_dim, 1.0))
        self.action_space = action_space
        self.box = hasattr(action_space, "low")
        self.encoder = torch.nn.Sequential(torch.nn.Linear(obs_dim, 8), torch.nn.Tanh())
        self.pi = torch.nn.Linear(8, 2 * action_space.shape[0] if self.box else action_space.n)

    @torch.no_grad()
    def forward_inference(self, batch):
        out = self.pi(self.encoder(batch["obs"]))
        if self.box:
            mean, log_std = out.chunk(2, dim=-1)
            out = torch.cat([mean, log_std.clamp(-20, 2)], dim=-1)
        return {"action_dist_inputs": out}


@pytest.mark.parametrize("box", [False, True])
def test_save_rllib_policy_serves_the_modules_actions(tmp_path, box):
    torch.manual_seed(0)
    space = (SimpleNamespace(shape=(2,), low=np.array([-0.5, -2.0]), high=np.array([0.5, 2.0])) if box
             else SimpleNamespace(n=3))
    module = FakeRLModule(3, space)
    save_rllib_policy(SimpleNamespace(get_module=lambda: module, config=None), tmp_path)
    meta = json.loads((tmp_path / POLICY_FILE).read_text())
    assert meta["output"] == ("actions" if box else "logits") and meta["observation_shape"] == [3]
    obs = np.random.default_rng(2).uniform(-1, 1, (20, 3)).astype(np.float32)
    got = load_policy(tmp_path).act(obs)
    ref = module.forward_inference({"obs": torch.from_numpy(obs)})["action_dist_inputs"].numpy()
    if box:
        np.testing.assert_allclose([g["action"] for g in got], np.clip(ref[:, :2], space.low, space.high), rtol=1e-5,
                                   atol=1e-6)
    else:
        assert [g["action"] for g in got] == ref.argmax(1).tolist()


# ---- script mode --------------------------------------------------------------------------------

def script_client(tmp_path, model_dir, script: str):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(script)
    env = ScriptModeEnv.from_env({"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": f"file://{src}"})
    model = load_script_model(model_dir, serve.ScriptDefaults(), env)
    return create_app(load_algorithm("rl"), model, ServingEnv.from_env({})).test_client()


def test_a_script_without_handlers_answers_as_plain_serving(tmp_path, logits_dir):
    c = script_client(tmp_path, logits_dir, "if __name__ == '__main__':\n    raise SystemExit('training only')\n")
    for accept in (None, VERBOSE, JSONL, CSV):
        plain = post(client(logits_dir), {"instances": [[0, 1], [2, 0]]}, accept=accept)
        scripted = post(c, {"instances": [[0, 1], [2, 0]]}, accept=accept)
        assert scripted.status_code == 200 and (scripted.data, scripted.mimetype) == (plain.data, plain.mimetype)
    assert post(c, {"instances": [[0, 1]]}, accept="image/png").status_code == 406
    assert post(c, b"0,1", "image/png").status_code == 415
    r = post(c, b"1,2,3\n", CSV)
    assert r.status_code == 400 and "row 1" in r.get_json()["message"]


def test_a_scripts_own_handlers_come_first(tmp_path, q_dir):
    script = ("import json\n"
              "def output_fn(prediction, accept):\n"
              "    return json.dumps([p['action'] for p in prediction]), 'application/json'\n")
    r = post(script_client(tmp_path, q_dir, script), {"instances": [0, 1]})
    assert r.status_code == 200 and r.get_json() == [1, 0]


def test_the_loader_serves_the_script_when_sagemaker_program_is_set(tmp_path, q_dir, monkeypatch):
    assert type(serve.load_model(q_dir)).__name__ == "PolicyModel"
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "train.py")
    monkeypatch.setenv("SAGEMAKER_SUBMIT_DIRECTORY", f"file://{tmp_path / 'code'}")
    assert type(serve.load_model(q_dir)).__name__ == "ScriptModel"
