"""Model loading at serving start-up: every bad artifact is a ClientError naming the directory and
the file, and nothing outside the model directory is read through a symlink."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from smalgos.artifacts import model_files, require_file
from smalgos.errors import ClientError
from smalgos.serving.estimator import load_estimator

# --- fitted models, saved once per module and copied per test ---


@pytest.fixture(scope="module")
def pca_dir(tmp_path_factory):
    from smalgos_pca.model import StreamingPCA

    x = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    d = tmp_path_factory.mktemp("pca")
    StreamingPCA(2, mini_batch_size=30).fit(x).save(d)
    return d


@pytest.fixture(scope="module")
def ll_dir(tmp_path_factory):
    from smalgos_linear_learner.model import LinearLearner

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    d = tmp_path_factory.mktemp("ll")
    LinearLearner("binary_classifier", num_models=1, mini_batch_size=40, epochs=1).fit(x, y).save(d)
    return d


def _copy(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    return dest


def _load_pca(d):
    from smalgos_pca.serve import load_model
    return load_model(d)


def _load_ll(d):
    from smalgos_linear_learner.serve import load_model
    return load_model(d)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_tensor(path: Path, name: str) -> None:
    from safetensors.numpy import load_file, save_file
    tensors = load_file(str(path))
    del tensors[name]
    save_file(tensors, str(path))


def test_the_fixtures_load(pca_dir, ll_dir):
    assert _load_pca(pca_dir).estimator.n_features_in_ == 5
    assert _load_ll(ll_dir).estimator.n_features_in_ == 4


PCA_CASES = {
    "truncated safetensors": ("model_algo-1.safetensors", _truncate),
    "garbage safetensors": ("model_algo-1.safetensors", lambda p: p.write_bytes(b"not a tensor file")),
    "empty safetensors": ("model_algo-1.safetensors", lambda p: p.write_bytes(b"")),
    "json not json": ("model_algo-1.json", lambda p: p.write_text("{not json")),
    "json not utf-8": ("model_algo-1.json", lambda p: p.write_bytes(b"\xff\xfe{")),
    "json missing field": ("model_algo-1.json", lambda p: p.write_text(json.dumps(
        {k: v for k, v in json.loads(p.read_text()).items() if k != "feature_dim"}))),
    "missing tensor": ("model_algo-1.safetensors", lambda p: _drop_tensor(p, "v")),
}


LL_CASES = {
    "truncated safetensors": ("model.safetensors", _truncate),
    "garbage safetensors": ("model.safetensors", lambda p: p.write_bytes(b"\x00" * 3)),
    "json not json": ("model.json", lambda p: p.write_text("{not json")),
    "json not an object": ("model.json", lambda p: p.write_text("[1, 2]")),
    "json missing field": ("model.json", lambda p: p.write_text(json.dumps(
        {k: v for k, v in json.loads(p.read_text()).items() if k != "threshold"}))),
    "json bad field": ("model.json", lambda p: p.write_text(json.dumps(
        {**json.loads(p.read_text()), "feature_dim": "many"}))),
    "missing tensor": ("model.safetensors", lambda p: _drop_tensor(p, "bias")),
}


LOAD_CASES = [("pca", case) for case in sorted(PCA_CASES)] + [("linear-learner", case) for case in sorted(LL_CASES)]


@pytest.mark.parametrize("algorithm, case", LOAD_CASES)
def test_load_failures_are_client_errors_naming_dir_and_file(request, tmp_path, algorithm, case):
    """PCA (through load_estimator) and Linear Learner (its own load), each model file spoilt."""
    cases, model_dir, load = {"pca": (PCA_CASES, "pca_dir", _load_pca),
                              "linear-learner": (LL_CASES, "ll_dir", _load_ll)}[algorithm]
    name, spoil = cases[case]
    d = _copy(request.getfixturevalue(model_dir), tmp_path / "model")
    spoil(d / name)
    with pytest.raises(ClientError) as e:
        load(d)
    assert str(d) in e.value.message and name in e.value.message, e.value.message


def test_load_estimator_covers_safetensors_and_json_errors_for_any_errors_tuple(tmp_path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    (tmp_path / "w.safetensors").write_bytes(b"\x01")
    (tmp_path / "m.json").write_text("{")
    with pytest.raises(ClientError, match=r"Cannot load the X model in .*: w\.safetensors: ") as e:
        load_estimator(tmp_path, ["w.safetensors", "m.json"], lambda d: load_file(str(d / "w.safetensors")),
                       "X", errors=(RuntimeError,))
    assert isinstance(e.value.__context__, SafetensorError)
    with pytest.raises(ClientError, match=r"Cannot load the X model in .*: m\.json: "):
        load_estimator(tmp_path, ["w.safetensors", "m.json"], lambda d: json.loads((d / "m.json").read_text()),
                       "X", errors=(RuntimeError,))


# --- symlinks out of the model directory ---


@pytest.fixture
def secret(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    f = outside / "passwd"
    f.write_text("root:x:0:0\n")
    return f


def test_require_file_refuses_a_symlink_out_of_the_model_dir(tmp_path, secret):
    d = tmp_path / "model"
    d.mkdir()
    os.symlink(secret, d / "model.json")
    with pytest.raises(ClientError, match="outside the model directory") as e:
        require_file(d, "model.json")
    assert "model.json" in e.value.message and str(d) in e.value.message
    os.symlink("/etc/passwd", d / "abs.json")
    with pytest.raises(ClientError, match="outside the model directory"):
        require_file(d, "abs.json")
    (d / "sub").mkdir()
    with pytest.raises(ClientError, match="outside the model directory"):
        require_file(d / "sub", "../model.json")


def test_symlinks_inside_the_model_dir_are_fine(tmp_path):
    d = tmp_path / "model"
    (d / "v2").mkdir(parents=True)
    (d / "v2" / "model.json").write_text("{}")
    os.symlink("v2/model.json", d / "model.json")
    assert require_file(d, "model.json") == d / "model.json"
    # a model directory that is itself reached through a symlink (as /opt/ml/model may be)
    os.symlink(d, tmp_path / "link")
    assert require_file(tmp_path / "link", "model.json") == tmp_path / "link" / "model.json"
    assert [p.name for p in model_files(tmp_path / "link")] == ["model.json", "model.json"]


def test_model_files_refuses_a_symlink_out_of_the_model_dir(tmp_path, secret):
    d = tmp_path / "model"
    d.mkdir()
    (d / "xgboost-model").write_bytes(b"x")
    os.symlink(secret, d / "zz-extra")
    with pytest.raises(ClientError, match="zz-extra.*outside the model directory"):
        model_files(d)
    (d / "zz-extra").unlink()
    os.symlink(tmp_path / "missing", d / "dangling")  # a dangling link is no file: not listed
    assert [p.name for p in model_files(d)] == ["xgboost-model"]


def test_serving_loaders_do_not_read_through_a_symlink_out(tmp_path, pca_dir, ll_dir, secret):
    for src, name, load in ((pca_dir, "model_algo-1.json", _load_pca), (ll_dir, "model.json", _load_ll)):
        d = _copy(src, tmp_path / src.name)
        secret.write_text((d / name).read_text())  # a valid file, so only the link is wrong
        (d / name).unlink()
        os.symlink(secret, d / name)
        with pytest.raises(ClientError, match="outside the model directory") as e:
            load(d)
        assert name in e.value.message
