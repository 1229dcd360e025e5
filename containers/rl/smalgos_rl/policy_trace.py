"""A torch module as a chain of layers, for `policy.save_torch_policy`: torch.export traces it (on
the trainer's own object; nothing is loaded) and the traced ATen graph is read back from the
output to the observations, one op at a time. What is not such a chain is a ValueError naming the
op, never an approximation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .policy import ACTIVATIONS, MLP_FILE


_IDENTITY = {"aten.alias.default", "aten.clone.default", "aten.contiguous.default", "aten.detach.default",
             "aten.lift_fresh_copy.default"}
_RESHAPES = {"aten.view.default", "aten.reshape.default", "aten.flatten.using_ints", "aten._unsafe_view.default"}
_UNARY = {f"aten.{name}.default": name for name in ACTIVATIONS}


def trace_layers(module: Any, shape: list[int]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The module as a chain of layers and their weights, or a ValueError naming what is not."""
    import torch

    example = torch.zeros((2, *shape), dtype=torch.float32)
    try:
        program = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        program = program.run_decompositions({})  # inlines grad-mode regions (RLlib's no_grad inference)
    except Exception as exc:  # torch raises many kinds; the trainer needs to know which module failed
        raise ValueError(f"{MLP_FILE}: cannot trace the module with torch.export on observations of shape"
                         f" [N, {', '.join(map(str, shape))}]: {type(exc).__name__}: {exc}") from exc
    return _GraphChain(program).layers()


class _GraphChain:
    """Walks back from an ExportedProgram's output to its input, one tensor argument at a time.
    Only what the output depends on is read (dead branches, e.g. RLlib's clipped log-std when the
    mean half is sliced out of a concatenation, drop out)."""

    def __init__(self, program):
        sig = program.graph_signature
        self.params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
                       **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
        self.tensors = {**program.state_dict, **program.constants}
        self.user_inputs = set(sig.user_inputs)
        self.program = program
        outputs = [n for n in program.graph.nodes if n.op == "output"][0].args[0]
        if len(outputs) != 1:
            raise ValueError(f"{MLP_FILE}: the module returns {len(outputs)} values; a policy returns one tensor")
        self.output = outputs[0]

    def layers(self):
        import torch

        chain: list[tuple[dict, list]] = self._chain(self.output)
        layers, weights = [], {}
        for i, (layer, tensors) in enumerate(chain):
            layers.append(layer)
            for name, tensor in zip(("weight", "bias"), tensors):
                weights[f"layers.{i}.{name}"] = tensor.detach().to("cpu", dtype=torch.float32).numpy()
        if not layers:
            raise ValueError(f"{MLP_FILE}: the module returns its input unchanged: no policy to save")
        return layers, weights

    def _tensor(self, node) -> Any:
        if node.op == "placeholder" and node.name in self.params:
            return self.tensors[self.params[node.name]]
        if node.op == "get_attr":
            return getattr(self.program.graph_module, node.target)
        raise ValueError(f"{MLP_FILE}: {node.name} should be a weight but is computed from the observations")

    @staticmethod
    def _width(node) -> int:
        return int(node.meta["val"].shape[-1])

    def _last_dim(self, node, dim) -> None:
        rank = len(node.meta["val"].shape)
        if dim not in (-1, rank - 1):
            raise ValueError(f"{MLP_FILE}: {node.name} works on dimension {dim} of {rank}; only the last is supported")

    def _chain(self, node) -> list:
        import operator

        if node.op == "placeholder":
            if node.name in self.user_inputs:
                return []
            raise ValueError(f"{MLP_FILE}: the output is a weight ({node.name}), not computed from the observations")
        if node.op != "call_function":
            raise ValueError(f"{MLP_FILE}: unsupported graph node {node.op} {node.target}")
        name, args = str(node.target), node.args
        if node.target is operator.getitem:  # a piece of a split or chunk of the last dimension
            parent, index = args
            pname = str(parent.target)
            if pname not in ("aten.split.Tensor", "aten.split_with_sizes.default", "aten.chunk.default"):
                raise ValueError(f"{MLP_FILE}: unsupported op: an item of {pname}")
            dim = parent.args[2] if len(parent.args) > 2 else parent.kwargs.get("dim", 0)
            self._last_dim(parent.args[0], dim)
            widths = [int(v.shape[-1]) for v in parent.meta["val"]]
            start = sum(widths[:index])
            return self._chain(parent.args[0]) + [({"op": "slice", "start": start, "stop": start + widths[index]}, [])]
        if name == "aten.linear.default":
            weight = self._tensor(args[1])
            bias = args[2] if len(args) > 2 else node.kwargs.get("bias")
            layer = {"op": "linear", "in": int(weight.shape[1]), "out": int(weight.shape[0])}
            if bias is None:
                layer["bias"] = False
            return self._chain(args[0]) + [(layer, [weight] + ([] if bias is None else [self._tensor(bias)]))]
        if name in _UNARY:
            op = _UNARY[name]
            layer = {"op": op}
            if op == "elu":
                alpha, scale, input_scale = (list(args[1:]) + [1.0, 1.0, 1.0])[:3]
                if scale != 1 or input_scale != 1:
                    raise ValueError(f"{MLP_FILE}: elu with scale {scale} / input_scale {input_scale} (selu?) is not"
                                     " supported")
                layer["alpha"] = float(alpha)
            elif op == "leaky_relu":
                layer["negative_slope"] = float(args[1] if len(args) > 1 else node.kwargs.get("negative_slope", 0.01))
            elif op == "gelu":
                layer["approximate"] = str(node.kwargs.get("approximate", args[1] if len(args) > 1 else "none"))
            return self._chain(args[0]) + [(layer, [])]
        if name in _IDENTITY or (name == "aten.dropout.default" and not (args[2] if len(args) > 2 else False)):
            return self._chain(args[0])
        if name in _RESHAPES:
            src, out = args[0].meta["val"].shape, node.meta["val"].shape
            if tuple(src[1:]) == tuple(out[1:]):
                return self._chain(args[0])
            if len(out) == 2 and int(out[1]) == math.prod(int(d) for d in src[1:]):
                return self._chain(args[0]) + [({"op": "flatten"}, [])]
            raise ValueError(f"{MLP_FILE}: {name} to shape {list(out)} is not a flatten of the observations")
        if name == "aten.slice.Tensor":
            src = args[0]
            dim = args[1] if len(args) > 1 else 0
            self._last_dim(src, dim)
            width = self._width(src)
            start, stop, step = (args[i] if len(args) > i else default for i, default in ((2, None), (3, None), (4, 1)))
            start, stop, _ = slice(start, stop).indices(width)
            if step != 1:
                raise ValueError(f"{MLP_FILE}: a slice with step {step} is not supported")
            if str(src.target) == "aten.cat.default":  # a slice that is exactly one of the concatenated inputs
                pieces, cat_dim = src.args[0], src.args[1] if len(src.args) > 1 else 0
                self._last_dim(src, cat_dim)
                offset = 0
                for piece in pieces:
                    w = self._width(piece)
                    if (offset, offset + w) == (start, stop):
                        return self._chain(piece)
                    offset += w
                raise ValueError(f"{MLP_FILE}: a slice [{start}:{stop}] across concatenated tensors is not supported")
            if (start, stop) == (0, width):
                return self._chain(src)
            return self._chain(src) + [({"op": "slice", "start": start, "stop": stop}, [])]
        raise ValueError(f"{MLP_FILE}: unsupported op {name} ({node.name}); a policy network here is a chain of"
                         f" linear layers and {', '.join(ACTIVATIONS)}, flatten and last-dimension slices")
