"""The algorithm kit's contract, checked over every estimator core the repository has (found by
importing each algorithm's package, not listed here):

- the declaration and the estimator agree: every declared hyperparameter is a parameter of the
  estimator with the declared default (or is the job's: `job_only`), `from_hyperparameters` of a
  job's parsed hyperparameters gives those values, and `help()` shows the same signature;
- float32 / float64 × dense / CSR inputs fit and predict alike;
- save → load (the serving loader) gives the same predictions;
- a fixed `random_state` repeats the fit exactly;
- a core that is not fitted says so (NotFittedError, a ClientError and a ValueError).
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing

import numpy as np
import pytest
import scipy.sparse as sp

from smalgos.declaration import Integer, load_algorithm, package_of, resolve
from smalgos.errors import ClientError, InputError, NotFittedError
from smalgos.estimator import DeclaredEstimator, StreamingEstimator, attribute_name
from smalgos.formats.batch import Batch

from .images import ALGORITHMS, import_module_here


def _cores() -> list[tuple[str, type]]:
    """The estimator cores of every module that imports here (see `images.import_here`)."""
    found = []
    for name in ALGORITHMS:
        algo = load_algorithm(name)
        package = importlib.import_module(package_of(name))
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = import_module_here(name, info.name)
            if module is None:
                continue
            for obj in vars(module).values():
                if (inspect.isclass(obj) and issubclass(obj, DeclaredEstimator) and obj.__module__ == module.__name__
                        and getattr(obj, "hyperparameters", None) is algo.hyperparameters):
                    found.append((name, obj))
    return found


CORES = _cores()
IDS = [cls.__name__ for _, cls in CORES]


def test_every_torch_algorithm_has_a_declared_core():
    names = {name for name, _ in CORES}
    assert {"kmeans", "pca", "knn", "linear-learner"} <= names, names


@pytest.mark.parametrize("name, cls", CORES, ids=IDS)
def test_declaration_and_estimator_agree(name, cls):
    declared = load_algorithm(name).hyperparameters
    params = cls.parameter_defaults()
    for p in declared.params:
        if p.name in cls.job_only:
            assert attribute_name(p.name) not in params
            continue
        attr = attribute_name(p.name)
        assert attr in params, f"{cls.__name__} lacks declared hyperparameter {p.name}"
        expected = cls.notebook_defaults.get(attr, p.default)
        assert params[attr] == expected, (attr, params[attr], expected)
    # nothing but the declared names and a few estimator settings
    extra = set(params) - {attribute_name(p.name) for p in declared.params}
    assert extra == set(cls.extra_parameters) | {"random_state", "device"}
    assert list(inspect.signature(cls).parameters) == list(cls.positional) + [
        n for n in params if n not in cls.positional]
    # a job's parsed hyperparameters (every required one given) become the estimator's values
    raw = {p.name: _example(p) for p in declared.params if p.required}
    parsed = declared.parse(raw)
    est = cls.from_hyperparameters(parsed)
    for p in declared.params:
        if p.name not in cls.job_only:
            assert getattr(est, attribute_name(p.name)) == parsed[p.name], p.name


def _example(p):
    if isinstance(p, Integer):
        return max(2, int(p.range.low or 0))
    return p.choices[0] if getattr(p, "choices", ()) else p.default


def _records(cls):
    """The records a core fits: numbers (`_data`), or its own `example_records()` when it reads other
    records (IP Insights: (entity, ip) strings)."""
    return _data(np.float32, False) if getattr(cls, "numeric_input", True) else (cls.example_records(), None)


def _data(dtype, sparse):
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0, 0], [6, 6, 0, 0], [0, 6, 6, 6]], dtype=np.float64)
    y = np.repeat([0, 1, 1], 40).astype(np.float64)
    x = centres[np.repeat([0, 1, 2], 40)] + rng.normal(0, 0.5, (120, 4))
    x[:, 3] = np.where(x[:, 3] > 3, x[:, 3], 0.0)  # some exact zeros for the sparse form
    x = np.abs(x).astype(dtype)  # non-negative: LDA reads word counts
    return (sp.csr_matrix(x) if sparse else x), y


def _make(name, cls, **kw):
    algo = load_algorithm(name)
    required = {attribute_name(p.name): _example(p) for p in algo.hyperparameters.params
                if p.required and p.name not in cls.job_only and attribute_name(p.name) not in cls.notebook_defaults}
    fast = {k: v for k, v in {"epochs": 2, "num_models": 2, "mini_batch_size": 32}.items()
            if k in cls.parameter_defaults()}
    return cls(**{**required, **fast, **kw})


def _fit(est, x, y):
    return est.fit(x, y) if est.uses_labels else est.fit(x)


def _served(name, est):
    """The serving model around `est`, of the class the algorithm's model loader returns."""
    return _serving_class(name)(est)


def _serving_class(name):
    """The class the algorithm's model loader says it returns."""
    return typing.get_type_hints(resolve(load_algorithm(name).model_loader))["return"]


def _predict(served, x) -> dict:
    if isinstance(x, list):  # a core's own example records, taken by its serving model's predict as they are
        return {k: np.asarray(v) for k, v in served.predict(x).fields.items()}
    return {k: np.asarray(v) for k, v in served.predict(Batch(np.asarray(x, np.float32) if not sp.issparse(x)
                                                                else sp.csr_matrix(x, dtype=np.float32))).fields.items()}


def _assert_same(a: dict, b: dict, **tol):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], err_msg=k, **tol)


# Cores that read numeric arrays (IP Insights reads (entity, ip) strings: no dtype or CSR to vary).
NUMERIC = [(name, cls) for name, cls in CORES if getattr(cls, "numeric_input", True)]


@pytest.mark.parametrize("name, cls", NUMERIC, ids=[cls.__name__ for _, cls in NUMERIC])
def test_float32_float64_dense_and_csr_fit_alike(name, cls):
    x32, y = _data(np.float32, False)
    reference = _predict(_served(name, _fit(_make(name, cls), x32, y)), x32)
    for dtype in (np.float32, np.float64):
        for sparse in (False, True):
            x, _ = _data(dtype, sparse)
            got = _predict(_served(name, _fit(_make(name, cls), x, y)), x)
            _assert_same(reference, got, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name, cls", CORES, ids=IDS)
def test_save_then_load_predicts_the_same(name, cls, tmp_path):
    x, y = _records(cls)
    est = _fit(_make(name, cls), x, y)
    est.save(tmp_path)
    loaded = resolve(load_algorithm(name).model_loader)(tmp_path)
    _assert_same(_predict(_served(name, est), x), _predict(loaded, x), rtol=0, atol=0)


@pytest.mark.parametrize("name, cls", CORES, ids=IDS)
def test_a_fixed_seed_repeats_the_fit(name, cls):
    x, y = _records(cls)
    a = _predict(_served(name, _fit(_make(name, cls, random_state=7), x, y)), x)
    b = _predict(_served(name, _fit(_make(name, cls, random_state=7), x, y)), x)
    _assert_same(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name, cls", CORES, ids=IDS)
def test_an_unfitted_core_says_so(name, cls, tmp_path):
    est = _make(name, cls)
    x, _ = _data(np.float32, False)
    for use in (lambda: est.save(tmp_path), lambda: _served(name, est).predict(Batch(x))):
        with pytest.raises(NotFittedError, match=f"This {cls.__name__} is not fitted yet") as info:
            use()
        assert isinstance(info.value, ClientError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("name, cls", CORES, ids=IDS)
def test_an_unknown_parameter_is_refused_by_name(name, cls):
    with pytest.raises(TypeError, match="has no parameter 'no_such_parameter'"):
        cls(no_such_parameter=1)


STREAMING = [(name, cls) for name, cls in CORES if issubclass(cls, StreamingEstimator)]


@pytest.mark.parametrize("name, cls", STREAMING, ids=[cls.__name__ for _, cls in STREAMING])
def test_a_model_that_is_not_finite_is_never_served(name, cls, tmp_path):
    x, y = _records(cls)
    est = _fit(_make(name, cls), x, y)
    est.check_finite_model("fitted")  # a sound fit passes
    array_name, values = next(iter(est.model_arrays().items()))
    values.flat[0] = np.nan  # the fitted array itself
    with pytest.raises(InputError, match=f"fitted: the model's {array_name} hold NaN or infinite values"):
        est.check_finite_model("fitted")
    est.save(tmp_path)
    with pytest.raises(ClientError, match=f"Cannot load the .* model in {tmp_path}: the model's {array_name} hold NaN"):
        resolve(load_algorithm(name).model_loader)(tmp_path)
