"""A trained policy in /opt/ml/model: written by training scripts, read by serving. Never pickled.

Two formats, each described by ``policy.json`` (written last, so that a directory with one holds
a whole policy):

    {"format": "mlp", "format_version": 1, "file": "policy.safetensors",
     "observation_shape": [4], "action_space": {"type": "discrete", "n": 2}, "output": "logits",
     "layers": [{"op": "linear", "in": 4, "out": 64}, {"op": "tanh"}, {"op": "linear", "in": 64, "out": 2}]}

    {"format": "q_table", "format_version": 1, "file": "q_table.npy",
     "observation_space": {"type": "discrete", "n": 16}, "action_space": {"type": "discrete", "n": 4},
     "output": "q_values"}

``action_space`` is ``{"type": "discrete", "n": A}`` or ``{"type": "box", "shape": [k], "low": [...],
"high": [...]}`` (an unbounded side is ``null``: JSON has no infinity). ``output`` says what the
network computes for a batch [N, *observation_shape]: ``logits`` [N, A] (action = argmax,
probabilities = softmax), ``q_values`` [N, A] (action = argmax) or ``actions`` [N, *shape] (a box
action, clipped to low/high).

Why not torch.export (``policy.pt2``), the format first planned: `torch.export.load` unpickles.
Read in torch 2.14.1 (`torch/export/pt2_archive/_package.py`, `torch/_export/serde/serialize.py`):
the archive's example inputs go through `deserialize_torch_artifact`, which tries
``torch.load(weights_only=True)`` and on failure falls back to ``torch.load(weights_only=False)``;
weights and constants the archive's own JSON marks ``use_pickle`` are read with
``torch.load(weights_only=False)``, "opaque" constants with ``pickle.loads``, custom objects with
``torch._C._pickle_load_obj``; and the function's docstring says so ("uses pickle under the hood").
A .pt2 whose sample-inputs entry was replaced by a pickle of ``os.system`` ran that command on
``torch.export.load`` (then raised). A model directory is untrusted input, so no .pt2 is read here.

Instead the network is written as what it is: a chain of layers, its weights in safetensors and its
structure in JSON. `save_torch_policy` still takes any `nn.Module`: it traces it with torch.export
(on the trainer's own object, nothing is loaded) and translates the traced ATen graph into layers —
linear, relu, tanh, sigmoid, silu, elu, leaky_relu, gelu, flatten and slices of the last dimension
(how RLlib's Box policies take the mean half of their distribution inputs). A graph that is not
such a chain (convolutions, recurrent state, attention) is refused naming the op, never
approximated; and every translation is checked against the module on random observations before
anything is written. Serving runs the layers in numpy (scipy for sigmoid and gelu, safetensors to
read the weights): it needs neither torch nor Ray, and a q_table needs numpy alone.

Every writer checks that what it writes is finite (a ValueError naming the file otherwise, and
nothing written); every read fault is a ClientError naming the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from smalgos.artifacts import load_arrays, require_file, write_atomic
from smalgos.errors import ClientError, InputError

POLICY_FILE = "policy.json"
MLP_FILE = "policy.safetensors"
Q_TABLE_FILE = "q_table.npy"
FORMAT_VERSION = 1
OUTPUTS = ("logits", "q_values", "actions")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "silu", "elu", "leaky_relu", "gelu")

Record = Callable[[int], str]  # names observation i in messages ("instance 3", "line 4")


def _default_record(i: int) -> str:
    return f"observation {i}"


# ------------------------------------------------------------------------------------------------
# Spaces
# ------------------------------------------------------------------------------------------------

def _bound_list(values: np.ndarray) -> list:
    return [None if not math.isfinite(v) else float(v) for v in values.ravel().tolist()]


def space_json(space: Any) -> dict:
    """An action space as policy.json writes it: a dict as above, or a gymnasium-like space
    (``Discrete`` has ``n``; ``Box`` has ``shape``, ``low``, ``high``; duck-typed, so that gymnasium
    need not be installed to save a policy)."""
    if isinstance(space, dict):
        kind = space.get("type")
        if kind == "discrete":
            return {"type": "discrete", "n": int(space["n"])}
        if kind == "box":
            shape = [int(d) for d in space["shape"]]
            low = space.get("low", -np.inf)
            high = space.get("high", np.inf)
        else:
            raise ValueError(f"action space {space!r}: type must be 'discrete' or 'box'")
    elif hasattr(space, "n") and not hasattr(space, "low"):
        return {"type": "discrete", "n": int(space.n)}
    elif hasattr(space, "low") and hasattr(space, "high") and hasattr(space, "shape"):
        shape, low, high = [int(d) for d in space.shape], space.low, space.high
    else:
        raise ValueError(f"action space {space!r}: expected a Discrete or Box space, or a dict")

    def bounds(values, default):
        arr = np.asarray([default if v is None else v for v in values] if isinstance(values, list) else values,
                         dtype=np.float64)
        return np.broadcast_to(arr, shape)

    lo, hi = bounds(low, -np.inf), bounds(high, np.inf)
    if (lo > hi).any():
        raise ValueError(f"action space {space!r}: low must not exceed high")
    return {"type": "box", "shape": shape, "low": _bound_list(lo), "high": _bound_list(hi)}


def _read_space(value: Any, key: str) -> dict:
    """policy.json's `key` space, checked (a ValueError naming the key)."""
    where = f"{POLICY_FILE}: {key!r}"
    if not isinstance(value, dict) or value.get("type") not in ("discrete", "box"):
        raise ValueError(f"{where} must be {{'type': 'discrete', 'n': N}} or {{'type': 'box', 'shape': [...], ...}}")
    if value["type"] == "discrete":
        n = value.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"{where}: 'n' must be a positive integer, got {n!r}")
        return {"type": "discrete", "n": n}
    shape = value.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise ValueError(f"{where}: 'shape' must be a list of positive integers, got {shape!r}")
    size = math.prod(shape)
    bounds = []
    for side, default in (("low", -np.inf), ("high", np.inf)):
        raw = value.get(side)
        finite = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
        if not isinstance(raw, list) or len(raw) != size or not all(v is None or finite(v) for v in raw):
            raise ValueError(f"{where}: {side!r} must be a list of {size} numbers or nulls")
        bounds.append(np.array([default if v is None else v for v in raw], np.float32).reshape(shape))
    return {"type": "box", "shape": shape, "low": bounds[0], "high": bounds[1]}


# ------------------------------------------------------------------------------------------------
# The layers, run in numpy
# ------------------------------------------------------------------------------------------------

def _run_layers(layers: Sequence[dict], weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The chain of `layers` on x [N, *observation_shape] float32."""
    from scipy.special import erf, expit

    for i, layer in enumerate(layers):
        op = layer["op"]
        if op == "linear":
            x = x @ weights[f"layers.{i}.weight"].T
            if layer.get("bias", True):
                x = x + weights[f"layers.{i}.bias"]
        elif op == "relu":
            x = np.maximum(x, 0)
        elif op == "tanh":
            x = np.tanh(x)
        elif op == "sigmoid":
            x = expit(x)
        elif op == "silu":
            x = x * expit(x)
        elif op == "elu":
            x = np.where(x > 0, x, layer["alpha"] * np.expm1(np.minimum(x, 0)))
        elif op == "leaky_relu":
            x = np.where(x > 0, x, layer["negative_slope"] * x)
        elif op == "gelu":
            if layer["approximate"] == "tanh":
                x = 0.5 * x * (1 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x ** 3)))
            else:
                x = 0.5 * x * (1 + erf(x / np.float32(math.sqrt(2))))
        elif op == "flatten":
            x = x.reshape(len(x), -1)
        elif op == "slice":
            x = x[..., layer["start"]:layer["stop"]]
        x = x.astype(np.float32, copy=False)
    return x


def _check_layers(layers: Any, weights_file: str) -> tuple[list[dict], dict[str, tuple[int, ...]]]:
    """policy.json's layers, checked, and the tensor shapes they name in `weights_file`."""
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{POLICY_FILE}: 'layers' must be a non-empty list")
    shapes: dict[str, tuple[int, ...]] = {}
    checked = []
    for i, layer in enumerate(layers):
        where = f"{POLICY_FILE}: layer {i}"
        op = layer.get("op") if isinstance(layer, dict) else None
        if op == "linear":
            dims = (layer.get("out"), layer.get("in"))
            if not all(isinstance(d, int) and d >= 1 for d in dims):
                raise ValueError(f"{where}: a linear layer needs positive integers 'in' and 'out'")
            shapes[f"layers.{i}.weight"] = dims
            if layer.get("bias", True):
                shapes[f"layers.{i}.bias"] = (dims[0],)
        elif op == "slice":
            if not all(isinstance(layer.get(k), int) and layer[k] >= 0 for k in ("start", "stop")) \
                    or layer["stop"] <= layer["start"]:
                raise ValueError(f"{where}: a slice needs integers 0 <= 'start' < 'stop'")
        elif op == "elu" or op == "leaky_relu":
            key = "alpha" if op == "elu" else "negative_slope"
            if not isinstance(layer.get(key), (int, float)) or not math.isfinite(layer[key]):
                raise ValueError(f"{where}: {op} needs a finite number {key!r}")
        elif op == "gelu":
            if layer.get("approximate") not in ("none", "tanh"):
                raise ValueError(f"{where}: gelu's 'approximate' must be 'none' or 'tanh'")
        elif op not in ACTIVATIONS + ("flatten",):
            raise ValueError(f"{where}: unknown op {op!r}; known: linear, slice, flatten, {', '.join(ACTIVATIONS)}"
                             f" (written by a newer smalgos, or not by smalgos, against {weights_file}?)")
        checked.append(dict(layer))
    return checked, shapes


# ------------------------------------------------------------------------------------------------
# Reading: load_policy → Policy
# ------------------------------------------------------------------------------------------------

@dataclass
class Policy:
    """A loaded policy. `act(observations, verbose)` answers one dict per observation:
    ``{"action": 1}`` (discrete: an int), ``{"action": [0.5, -1.0]}`` (box: a list, clipped), and
    with `verbose` ``"probabilities"`` (logits policies) or ``"q_values"`` (Q policies, q_table).
    Values are Python numbers (a script's own output_fn may json.dumps them); floats are float32
    values widened, so that a float32 writer prints them shortest (serve.py)."""

    format: str
    observation_shape: tuple[int, ...]  # () for a q_table: one int state
    action_space: dict
    output: str
    layers: list[dict] | None = None
    weights: dict[str, np.ndarray] | None = None
    q_table: np.ndarray | None = None

    @property
    def num_states(self) -> int | None:
        return None if self.q_table is None else int(self.q_table.shape[0])

    # -- observations --
    def observations(self, observations: Any, record: Record | None = None) -> np.ndarray:
        """`observations` (an array, or a list of observations) as [N, *observation_shape] float32
        (mlp) or [N] int64 states (q_table); an InputError naming the first record at fault
        (`record(i)`, default "observation i")."""
        record = record or _default_record
        arr = _numeric(observations)
        if arr is not None and arr.ndim >= 1 and arr.shape[0] == 0:  # no observations: no actions
            return np.zeros((0, *self.observation_shape), np.int64 if self.q_table is not None else np.float32)
        if self.q_table is not None:
            if arr is not None and arr.ndim == 0:  # one state alone
                arr, observations = arr.reshape(1), [observations]
            return self._states(observations, arr, record)
        shape = self.observation_shape
        if arr is not None and arr.shape == shape:  # one observation alone
            arr, observations = arr[None], [observations]
        if arr is not None and arr.ndim >= 1:
            n = arr.shape[0]
            if arr.shape[1:] == shape or (arr.ndim == 2 and arr.shape[1] == math.prod(shape)):
                arr = arr.astype(np.float32, copy=False).reshape((n, *shape))
                flat = arr.reshape(n, -1)
                bad = ~np.isfinite(flat).all(axis=1)
                if bad.any():
                    raise InputError(f"{record(int(np.argmax(bad)))}: observation values must be finite numbers")
                return arr
        if arr is not None and arr.ndim == 0:
            raise InputError(f"{record(0)}: one number; the policy takes observations of shape {list(shape)}")
        for i, item in enumerate(observations):  # find the record at fault
            one = _numeric(item)
            if one is None:
                raise InputError(f"{record(i)}: an observation must be a (nested) list of numbers, got "
                                 f"{_excerpt(item)}")
            if one.shape != shape and not (one.ndim == 1 and one.size == math.prod(shape)):
                raise InputError(f"{record(i)}: an observation of shape {list(one.shape)} ({one.size} values); the"
                                 f" policy takes observations of shape {list(shape)} ({math.prod(shape)} values)")
        raise InputError(f"{record(0)}: the observations do not make an array of shape"
                         f" [N, {', '.join(map(str, shape))}]")

    def _states(self, observations: Any, arr: np.ndarray | None, record: Record) -> np.ndarray:
        n_states = self.num_states
        rule = f"a state is an integer in [0, {n_states})"
        if arr is not None and arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr is None or arr.ndim != 1:  # states one by one: 3 and [3] alike, or the record at fault
            values = []
            for i, item in enumerate(observations):
                one = _numeric(item)
                if one is None or one.size != 1:
                    raise InputError(f"{record(i)}: {_excerpt(item)} is not a state ({rule})")
                values.append(one.reshape(()))
            arr = np.array(values)
        values = arr.astype(np.float64)
        bad = ~np.isfinite(values) | (values != np.floor(values)) | (values < 0) | (values >= n_states)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{record(i)}: {_excerpt(arr[i].item())} is not a state ({rule})")
        return values.astype(np.int64)

    # -- outputs --
    def outputs(self, observations: Any, record: Record | None = None) -> np.ndarray:
        """The network's outputs (logits, Q-values or actions before clipping) for `observations`."""
        x = self.observations(observations, record)
        if self.q_table is not None:
            return self.q_table[x]
        out = _run_layers(self.layers, self.weights, x)
        bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
        if bad.any():
            raise InputError(f"{(record or _default_record)(int(np.argmax(bad)))}: the policy's outputs for this"
                             " observation are not finite (are its values far outside the training range?)")
        return out

    def act(self, observations: Any, verbose: bool = False, record: Record | None = None) -> list[dict]:
        out = self.outputs(observations, record)
        if self.action_space["type"] == "box":
            actions = np.clip(out, self.action_space["low"], self.action_space["high"])
            return [{"action": a} for a in actions.tolist()]
        actions = np.argmax(out, axis=1).tolist()
        if not verbose:
            return [{"action": a} for a in actions]
        if self.output == "logits":
            shifted = out - out.max(axis=1, keepdims=True)
            e = np.exp(shifted)
            extra = "probabilities", (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        else:
            extra = "q_values", out.astype(np.float32)
        return [{"action": a, extra[0]: v} for a, v in zip(actions, extra[1].tolist())]

    def warm_up(self) -> None:
        """One action for a zero observation (state 0): a policy that cannot act is not served."""
        self.act(np.zeros((1, *self.observation_shape), np.float32) if self.q_table is None else [0])


def _numeric(value: Any) -> np.ndarray | None:
    """`value` as an int or float array, or None (strings, null, booleans, ragged nesting). As the
    kit's JSON reader: a boolean among numbers reads as 0/1, a list of booleans alone is refused."""
    if isinstance(value, np.ndarray):
        return value if value.dtype.kind in "iuf" else None
    try:
        arr = np.array(value)
    except (TypeError, ValueError):
        return None
    if arr.dtype.kind not in "iuf":
        return None
    return arr


def _excerpt(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_policy(model_dir: Path | str) -> Policy:
    """The policy in `model_dir` (policy.json and the file it names); a ClientError naming the file
    that is missing, malformed, of other shapes than policy.json says, or not finite."""
    model_dir = Path(model_dir)
    path = require_file(model_dir, POLICY_FILE, "policy")
    try:
        meta = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError(f"Cannot load the policy in {model_dir}: {POLICY_FILE} is not valid JSON ({exc})") from None
    try:
        return _load(model_dir, meta)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        message = f"missing key {exc}" if type(exc) is KeyError else str(exc)
        named = {POLICY_FILE, str(meta.get("file"))} if isinstance(meta, dict) else {POLICY_FILE}
        if not any(name in message for name in named):
            message = f"{POLICY_FILE}: {message}"
        raise ClientError(f"Cannot load the policy in {model_dir}: {message}") from None


def _load(model_dir: Path, meta: Any) -> Policy:
    if not isinstance(meta, dict):
        raise ValueError(f"{POLICY_FILE} must hold a JSON object")
    fmt, version = meta.get("format"), meta.get("format_version", FORMAT_VERSION)
    if fmt not in ("mlp", "q_table"):
        raise ValueError(f"{POLICY_FILE}: 'format' is {fmt!r}; this image reads 'mlp' and 'q_table'")
    if version != FORMAT_VERSION:
        raise ValueError(f"{POLICY_FILE}: 'format_version' {version!r}; this image reads {FORMAT_VERSION}")
    file = meta.get("file")
    if not isinstance(file, str) or not file or "/" in file or "\\" in file:
        raise ValueError(f"{POLICY_FILE}: 'file' must be a file name in the model directory, got {file!r}")
    action_space = _read_space(meta.get("action_space"), "action_space")
    output = meta.get("output")
    _check_output(output, action_space, POLICY_FILE)
    weights_path = require_file(model_dir, file, "policy")
    if fmt == "q_table":
        obs_space = _read_space(meta.get("observation_space"), "observation_space")
        if obs_space["type"] != "discrete" or output != "q_values":
            raise ValueError(f"{POLICY_FILE}: a q_table has a discrete 'observation_space' and output 'q_values'")
        try:
            q = np.load(weights_path, allow_pickle=False)
        except ValueError as exc:  # an object array, or not a .npy file
            raise ValueError(f"{file}: not a numeric .npy array ({exc})") from None
        expected = (obs_space["n"], action_space["n"])
        if q.shape != expected or q.dtype.kind not in "iuf":
            raise ValueError(f"{file}: an array of shape {list(q.shape)} and dtype {q.dtype}; {POLICY_FILE} says"
                             f" {list(expected)} numbers (states x actions)")
        q = q.astype(np.float32)
        _require_finite(q, f"{file}: the Q-table")
        return Policy("q_table", (), action_space, output, q_table=q)
    shape = meta.get("observation_shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise ValueError(f"{POLICY_FILE}: 'observation_shape' must be a list of positive integers, got {shape!r}")
    layers, shapes = _check_layers(meta.get("layers"), file)
    from safetensors import SafetensorError

    try:
        weights = load_arrays(weights_path, shapes)
    except SafetensorError as exc:
        raise ValueError(f"{file}: not a readable safetensors file ({exc})") from None
    for name, arr in weights.items():
        _require_finite(arr, f"{file}: tensor {name!r}")
    policy = Policy("mlp", tuple(shape), action_space, output, layers, weights)
    try:
        out = _run_layers(layers, weights, np.zeros((1, *shape), np.float32))
    except ValueError as exc:  # shapes that do not chain
        raise ValueError(f"{file}: the layers of {POLICY_FILE} do not chain from observation shape {shape}: {exc}") \
            from None
    _check_output_shape(out.shape[1:], action_space, output, f"{POLICY_FILE} and {file}")
    return policy


def _require_finite(arr: np.ndarray, what: str) -> None:
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{what} holds {bad} NaN or infinite value(s); a policy must be finite")


def _check_output(output: Any, action_space: dict, where: str) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"{where}: 'output' is {output!r}; expected one of {', '.join(OUTPUTS)}")
    if (output == "actions") != (action_space["type"] == "box"):
        raise ValueError(f"{where}: output {output!r} does not go with a {action_space['type']} action space"
                         " (discrete: logits or q_values; box: actions)")


def _check_output_shape(shape: tuple[int, ...], action_space: dict, output: str, where: str) -> None:
    expected = (tuple(action_space["shape"]) if action_space["type"] == "box" else (action_space["n"],))
    if tuple(shape) != expected:
        raise ValueError(f"{where}: the network's {output} have shape [N, {', '.join(map(str, shape))}] but the action"
                         f" space needs [N, {', '.join(map(str, expected))}]")


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------

def _write_policy_json(model_dir: Path, meta: dict) -> None:
    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in meta.items()) + "\n}\n"
    write_atomic(model_dir / POLICY_FILE, lambda tmp: tmp.write_text(text))


def save_q_table(q: Any, model_dir: Path | str) -> Path:
    """Save a tabular policy: `q` [S, A] Q-values (states × actions) → q_table.npy, policy.json.
    Its observations are integer states in [0, S), its actions integers in [0, A)."""
    q = np.asarray(q)
    if q.ndim != 2 or 0 in q.shape or q.dtype.kind not in "iuf":
        raise ValueError(f"{Q_TABLE_FILE}: a Q-table is a numeric array [states, actions], got shape {list(q.shape)}"
                         f" of {q.dtype}")
    q = q.astype(np.float32 if q.dtype.kind in "iu" else q.dtype)
    _require_finite(q, f"{Q_TABLE_FILE}: the Q-table")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would add .npy to a path
            np.save(f, np.ascontiguousarray(q), allow_pickle=False)

    write_atomic(model_dir / Q_TABLE_FILE, write)
    _write_policy_json(model_dir, {
        "format": "q_table", "format_version": FORMAT_VERSION, "file": Q_TABLE_FILE,
        "observation_space": {"type": "discrete", "n": int(q.shape[0])},
        "action_space": {"type": "discrete", "n": int(q.shape[1])}, "output": "q_values"})
    return model_dir / POLICY_FILE


def save_torch_policy(module: Any, model_dir: Path | str, observation_shape: Sequence[int], action_space: Any,
                      output: str) -> Path:
    """Save a torch `module` mapping observations [N, *observation_shape] float32 to `output`
    ("logits" or "q_values" [N, A] for a discrete action space, "actions" [N, *shape] for a box) as
    policy.safetensors + policy.json. The module is traced (torch.export, in eval mode) and written
    as a chain of layers (see the module's docstring); one that is not such a chain, whose outputs
    do not fit the action space, or whose weights or outputs are not finite is a ValueError, and
    nothing is written."""
    import torch

    from .policy_trace import trace_layers

    shape = [int(d) for d in observation_shape]
    if not shape or min(shape) < 1:
        raise ValueError(f"observation_shape must be a non-empty list of positive integers, got {observation_shape!r}")
    space = space_json(action_space)
    _check_output(output, space, "save_torch_policy")
    modes = {m: m.training for m in module.modules()}  # put back as they were: the trainer goes on training
    module.eval()
    try:
        layers, weights = trace_layers(module, shape)
        generator = torch.Generator().manual_seed(0)
        probe = torch.randn((16, *shape), generator=generator)
        with torch.no_grad():
            expected = torch.as_tensor(module(probe)).detach().to(torch.float32).cpu().numpy()
    finally:
        for m, training in modes.items():
            m.training = training
    for name, arr in weights.items():
        _require_finite(arr, f"{MLP_FILE}: tensor {name!r}")
    got = _run_layers(layers, weights, probe.numpy())
    if got.shape != expected.shape:
        raise ValueError(f"{MLP_FILE}: the translated layers give shape {list(got.shape)}, the module"
                         f" {list(expected.shape)}")
    _check_output_shape(got.shape[1:], space, output, f"save_torch_policy({MLP_FILE})")
    if not np.isfinite(expected).all():
        raise ValueError(f"{MLP_FILE}: the module's outputs on random observations are not finite; a policy must"
                         " be finite")
    scale = max(1.0, float(np.abs(expected).max()))
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-4 * scale):
        raise ValueError(f"{MLP_FILE}: the translated layers differ from the module by up to"
                         f" {float(np.abs(got - expected).max()):.3g} on random observations; refusing to save")
    return _write_mlp(Path(model_dir), shape, space, output, layers, weights)


def _write_mlp(model_dir: Path, shape: list[int], space: dict, output: str, layers: list[dict],
               weights: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    model_dir.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    write_atomic(model_dir / MLP_FILE, lambda tmp: save_file(arrays, str(tmp), metadata={"format": "smalgos-rl-mlp"}))
    _write_policy_json(model_dir, {
        "format": "mlp", "format_version": FORMAT_VERSION, "file": MLP_FILE, "observation_shape": shape,
        "action_space": space, "output": output, "layers": layers})
    return model_dir / POLICY_FILE


def save_rllib_policy(algo: Any, model_dir: Path | str) -> Path:
    """Save the policy of an RLlib Algorithm on the new API stack (its default RLModule): the
    network of ``algo.get_module().forward_inference({"obs": obs})["action_dist_inputs"]``, its
    spaces from the module (else ``algo.config``). A Discrete action space is served as logits; a
    1-D Box as actions, the mean half of the distribution inputs (mean and log-std concatenated:
    serving answers the mean action, clipped). Observations must be a Box: RLlib's connectors
    (one-hot encodings, observation filters) run outside the module and are not saved."""
    import torch

    module = algo.get_module()
    obs_space = getattr(module, "observation_space", None) or getattr(algo.config, "observation_space", None)
    act_space = getattr(module, "action_space", None) or getattr(algo.config, "action_space", None)
    if obs_space is None or act_space is None:
        raise ValueError("save_rllib_policy: the algorithm's module names no observation or action space")
    if not (hasattr(obs_space, "low") and hasattr(obs_space, "shape") and obs_space.shape):
        raise ValueError(f"save_rllib_policy: observation space {obs_space} is not a Box; RLlib's connectors"
                         " encode other spaces outside the module (save a network with save_torch_policy)")
    space = space_json(act_space)
    if space["type"] == "box" and len(space["shape"]) != 1:
        raise ValueError(f"save_rllib_policy: action space {act_space}: only 1-D Box actions are supported")

    class DistInputs(torch.nn.Module):
        """obs → action_dist_inputs (discrete: logits; box: the mean half)."""

        def __init__(self, rl_module, mean_width: int | None):
            super().__init__()
            self.rl_module, self.mean_width = rl_module, mean_width

        def forward(self, obs):
            out = self.rl_module.forward_inference({"obs": obs})["action_dist_inputs"]
            return out if self.mean_width is None else out[..., :self.mean_width]

    width = space["shape"][0] if space["type"] == "box" else None
    output = "actions" if space["type"] == "box" else "logits"
    return save_torch_policy(DistInputs(module, width), model_dir, list(obs_space.shape), space, output)
