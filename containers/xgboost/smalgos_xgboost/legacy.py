"""Read XGBoost's old binary model format (what AWS's 0.90-x … 1.7-1 images saved) without XGBoost.

XGBoost 3.1 dropped this format (`Booster.load_model` now accepts only JSON and UBJSON), yet every
model AWS's `1.7-1` image trained is an `xgboost-model` file in it. This module parses the bytes
(a fixed C struct layout, little-endian; the layout is XGBoost's `LearnerModelParamLegacy`,
`GBTreeModelParam`, `TreeParam`, `RTreeNode` and `RTreeNodeStat`) and writes the equivalent
model in XGBoost's JSON schema (the one 1.7 itself writes), which XGBoost 3 loads.

It also takes apart a pickled `Booster` (AWS's images before 1.3-1 pickled them) *without
unpickling*: `pickletools` walks the opcodes, and the raw model bytes stored under the `handle`
key are taken out as data. No object is ever constructed from a pickle.
"""

from __future__ import annotations

import io
import json
import math
import pickletools
import struct

import numpy as np

from smalgos.errors import ClientError

_LEARNER = struct.Struct("<fIiiiIIIi25i")  # 136 bytes: LearnerModelParamLegacy
_GBTREE = struct.Struct("<iiiiqii32i")  # 160 bytes: GBTreeModelParam
_TREE = struct.Struct("<6i31i")  # 148 bytes: TreeParam
_GBLINEAR = struct.Struct("<Ii32i")  # 136 bytes: GBLinearModelParam
_NODE = np.dtype([("parent", "<i4"), ("cleft", "<i4"), ("cright", "<i4"), ("sindex", "<u4"), ("info", "<f4")])
_STAT = np.dtype([("loss_chg", "<f4"), ("sum_hess", "<f4"), ("base_weight", "<f4"), ("leaf_child_cnt", "<i4")])

PICKLE_PROTOCOL_MARK = 0x80


class _Reader:
    def __init__(self, data: bytes):
        self.buf = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError(f"truncated model: wanted {n} bytes at offset {self.pos}, file has {len(self.buf)}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, st: struct.Struct) -> tuple:
        return st.unpack(self.take(st.size))

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        n = self.u64()
        if n > 1 << 30:
            raise ValueError("implausible string length")
        return bytes(self.take(n)).decode("utf-8")

    def floats(self) -> np.ndarray:
        n = self.u64()
        return np.frombuffer(self.take(4 * n), dtype="<f4").copy()

    def array(self, dtype: np.dtype, n: int) -> np.ndarray:
        return np.frombuffer(self.take(dtype.itemsize * n), dtype=dtype).copy()

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos


def is_legacy_binary(data: bytes) -> bool:
    """A guess good enough to pick the parser: the `binf` header, or no JSON/UBJSON/pickle start."""
    if data[:4] == b"binf":
        return True
    if not data or data[:1] in (b"{", b"[") or data[0] == PICKLE_PROTOCOL_MARK or data.lstrip()[:1] == b"{":
        return False
    return len(data) >= _LEARNER.size


def _pred_transform(objective: str, value: float) -> float:
    if objective in ("binary:logistic", "reg:logistic"):
        return 1.0 / (1.0 + math.exp(-value))
    if objective in ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox"):
        return math.exp(value)
    return value


def _float_str(x: float) -> str:
    return repr(float(np.float32(x)))


def _tree_json(tree_id: int, r: _Reader) -> dict:
    p = r.unpack(_TREE)
    num_nodes, num_deleted, num_feature, size_leaf_vector = p[1], p[2], p[4], p[5]
    if num_nodes <= 0:
        raise ValueError(f"tree {tree_id} has {num_nodes} nodes")
    nodes = r.array(_NODE, num_nodes)
    stats = r.array(_STAT, num_nodes)
    if size_leaf_vector != 0:
        n = r.u64()
        r.take(4 * n)  # leaf vectors were never used by single-output trees
    parents = (nodes["parent"].view("<u4") & 0x7FFFFFFF).astype(np.int64)
    return {
        "base_weights": stats["base_weight"].astype(float).tolist(),
        "categories": [], "categories_nodes": [], "categories_segments": [], "categories_sizes": [],
        "default_left": (nodes["sindex"] >> 31).astype(int).tolist(),
        "id": tree_id,
        "left_children": nodes["cleft"].astype(int).tolist(),
        "loss_changes": stats["loss_chg"].astype(float).tolist(),
        "parents": parents.tolist(),
        "right_children": nodes["cright"].astype(int).tolist(),
        "split_conditions": nodes["info"].astype(float).tolist(),
        "split_indices": (nodes["sindex"] & 0x7FFFFFFF).astype(int).tolist(),
        "split_type": [0] * num_nodes,
        "sum_hessian": stats["sum_hess"].astype(float).tolist(),
        "tree_param": {"num_deleted": str(num_deleted), "num_feature": str(num_feature),
                       "num_nodes": str(num_nodes), "size_leaf_vector": "0"},
    }


def _gbtree_json(r: _Reader) -> dict:
    g = r.unpack(_GBTREE)
    num_trees, num_parallel_tree, num_pbuffer = g[0], g[1], g[4]
    if num_pbuffer != 0:
        raise ValueError("models with a prediction buffer (XGBoost < 0.6) are not supported")
    trees = [_tree_json(i, r) for i in range(num_trees)]
    tree_info = r.array(np.dtype("<i4"), num_trees).astype(int).tolist() if num_trees else []
    return {"model": {"gbtree_model_param": {"num_parallel_tree": str(max(1, num_parallel_tree)),
                                             "num_trees": str(num_trees), "size_leaf_vector": "0"},
                      "tree_info": tree_info, "trees": trees},
            "name": "gbtree"}


def parse_legacy(data: bytes, default_objective_config=None) -> dict:
    """The model in XGBoost's JSON schema. `default_objective_config(name, num_class)` supplies
    the objective's parameters for models from XGBoost < 1.0, which did not save them."""
    r = _Reader(bytes(data))
    if bytes(r.buf[:4]) == b"binf":
        r.take(4)
    m = r.unpack(_LEARNER)
    base_score, num_feature, num_class, extra_attrs, _eval_metrics, major, _minor = m[:7]
    objective, booster = r.string(), r.string()
    if booster in ("gbtree", "dart"):
        gbm = _gbtree_json(r)
        if booster == "dart":
            weights = r.floats().astype(float).tolist() if int(gbm["model"]["gbtree_model_param"]["num_trees"]) else []
            gbm = {"gbtree": gbm, "name": "dart", "weight_drop": weights}
    elif booster == "gblinear":
        r.unpack(_GBLINEAR)
        gbm = {"model": {"boosted_rounds": 0, "weights": r.floats().astype(float).tolist()}, "name": "gblinear"}
    else:
        raise ValueError(f"unknown booster {booster!r}")
    attributes: dict[str, str] = {}
    if extra_attrs:
        for _ in range(r.u64()):
            key, value = r.string(), r.string()
            attributes[key] = value
    objective_config = None
    if "objective" in attributes:
        objective_config = json.loads(attributes.pop("objective"))
    attributes.pop("metrics", None)
    poisson_step = attributes.pop("count_poisson_max_delta_step", None)
    if major < 1 and not objective.startswith("multi:"):
        # XGBoost < 1.0 stored base_score as a margin; newer versions store the response value.
        base_score = _pred_transform(objective, base_score)
    if objective_config is None:
        objective_config = (default_objective_config(objective, num_class) if default_objective_config
                            else {"name": objective})
        if poisson_step is not None and "poisson_regression_param" in objective_config:
            objective_config["poisson_regression_param"]["max_delta_step"] = poisson_step
    return {
        "learner": {
            "attributes": attributes,
            "feature_names": [], "feature_types": [],
            "gradient_booster": gbm,
            "learner_model_param": {"base_score": _float_str(base_score), "boost_from_average": "0",
                                    "num_class": str(num_class), "num_feature": str(num_feature),
                                    "num_target": "1"},
            "objective": objective_config,
        },
        "version": [1, 7, 4],
    }


def legacy_to_json_bytes(data: bytes, default_objective_config=None) -> bytes:
    try:
        model = parse_legacy(data, default_objective_config)
    except (ValueError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClientError(f"The model file is neither XGBoost JSON/UBJSON nor a readable XGBoost binary model "
                          f"({exc})") from None
    return json.dumps(model).encode()


# ---------------------------------------------------------------------------------------------------
# Pickles, read as data
# ---------------------------------------------------------------------------------------------------

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
               "SHORT_BINSTRING"}
_BYTES_OPS = {"SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8"}


def is_pickle(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == PICKLE_PROTOCOL_MARK and 2 <= data[1] <= 5


def pickled_classes(data: bytes) -> list[str]:
    """The `module.Class` names a pickle would import, read from its opcodes."""
    names, strings = [], []
    for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
        if op.name == "GLOBAL":
            names.append(str(arg).replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            names.append(f"{strings[-2]}.{strings[-1]}")
        if op.name in _STRING_OPS:
            strings.append(arg)
    return names


def booster_bytes_from_pickle(data: bytes) -> bytes:
    """The raw model of a pickled xgboost Booster (or scikit-learn wrapper), without unpickling.

    XGBoost pickles a Booster as a dict whose `handle` entry holds the model bytes (the binary
    format in XGBoost < 1.0, a JSON/UBJSON memory snapshot since). Protocol 2 pickles carry them
    as a latin-1 string, newer ones as bytes.
    """
    try:
        ops = list(pickletools.genops(io.BytesIO(data)))
    except Exception as exc:  # noqa: BLE001 - a broken pickle is the user's file
        raise ClientError(f"The model file looks like a Python pickle but cannot be read: {exc}") from None
    classes = [c for c in pickled_classes(data)]
    if not any(c.startswith("xgboost.") for c in classes):
        raise ClientError("The model file is a Python pickle of " + (", ".join(classes[:3]) or "unknown objects")
                          + ", not of an XGBoost Booster. Save the model with Booster.save_model('xgboost-model')")
    for i, (op, arg, _pos) in enumerate(ops):
        if op.name in _STRING_OPS and arg == "handle":
            for op2, arg2, _ in ops[i + 1:i + 12]:
                if op2.name in _BYTES_OPS and len(arg2) > 64:
                    return bytes(arg2)
                if op2.name in _STRING_OPS and isinstance(arg2, str) and len(arg2) > 64:
                    return arg2.encode("latin-1")
    raise ClientError("The model file is a pickled XGBoost object without readable model bytes. Save the model "
                      "with Booster.save_model('xgboost-model') and package that file instead")
