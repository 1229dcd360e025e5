"""`Predictions`: what an algorithm answers, before an encoder writes it in the Accept type."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_ROOT_KEY = "predictions"  # the JSON wrapper key of most algorithms' answers


@dataclass
class Predictions:
    """Named per-record outputs, in order.

    fields:   name → (n,) for one value per record or (n, k) for a vector per record; every field
              has the same n. Encoders write values as float32 (integer outputs such as cluster
              ids come out as ``0.0``, as AWS's algorithms answer).

    The JSON wrapper key ("predictions" for most algorithms, "projections" for PCA, "scores" for
    RCF) is not theirs: the encoder is given it (`Encoder.encode(..., root_key=)`).
    """

    fields: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = None
        checked = {}
        for name, values in self.fields.items():
            arr = np.asarray(values)
            if arr.ndim not in (1, 2):
                raise ValueError(f"prediction field {name!r} has shape {arr.shape}: expected (n,) or (n, k)")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ValueError(f"prediction field {name!r} has {arr.shape[0]} rows, "
                                 f"the first field has {n}")
            checked[name] = arr
        self.fields = checked

    def __len__(self) -> int:
        for arr in self.fields.values():
            return int(arr.shape[0])
        return 0

    def float32_fields(self) -> dict[str, np.ndarray]:
        """Each field as float32 (what every encoder writes)."""
        return {k: np.asarray(v, dtype=np.float32) for k, v in self.fields.items()}
