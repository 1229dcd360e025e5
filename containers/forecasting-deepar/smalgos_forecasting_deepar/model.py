"""The SageMaker layer over GluonTS's PyTorch DeepAR: AWS's hyperparameters → `DeepAREstimator`,
our `Series` → GluonTS data entries, and the artifact (the network's weights in safetensors + JSON,
never GluonTS's own serde, which pickles parts).

Mapping (design choices where AWS says nothing):
- `num_cells` → hidden_size, `mini_batch_size` → batch_size, `learning_rate` → lr, and AWS's one
  `embedding_dimension` for every `cat` field; scaling on (GluonTS's mean-abs scaler, as AWS).
- `likelihood` → Normal, Beta, NegativeBinomial, StudentT outputs; `deterministic-L1` has no GluonTS
  equivalent: Laplace (its negative log-likelihood is the L1 loss up to the scale), whose median is
  the point forecast.
- An AWS epoch covers about one window per series (AWS's logs: ~300 windows an epoch for 200 series),
  a GluonTS epoch 50 batches: an epoch here is ceil(series / mini_batch_size) batches.
- Lags and time features come from GluonTS for the frequency (`frequency.py`: spelt so that pandas
  3 accepts it) and are stored in the artifact, so a model loads the network it was trained with.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from gluonts.time_feature import get_lags_for_frequency, time_features_from_frequency_str
from gluonts.torch.distributions import (
    BetaOutput, LaplaceOutput, NegativeBinomialOutput, NormalOutput, StudentTOutput,
)
from gluonts.torch.model.deepar import DeepAREstimator
from safetensors.torch import load_file, save_file

from smalgos.errors import InputError
from smalgos.estimator import read_metadata, write_metadata

from .declaration import BETA, DETERMINISTIC_L1, GAUSSIAN, NEGATIVE_BINOMIAL, STUDENT_T
from .frequency import Frequency
from .series import Series

FORMAT, FORMAT_VERSION = "smalgos-forecasting-deepar", 1
WEIGHTS_FILE, META_FILE = "deepar.safetensors", "deepar.json"
LIKELIHOODS = {GAUSSIAN: NormalOutput, BETA: BetaOutput, NEGATIVE_BINOMIAL: NegativeBinomialOutput,
               STUDENT_T: StudentTOutput, DETERMINISTIC_L1: LaplaceOutput}


@dataclass(frozen=True)
class Network:
    """Everything that fixes the network's shape: stored as JSON beside its weights."""

    time_freq: str
    prediction_length: int
    context_length: int
    num_layers: int
    num_cells: int
    dropout_rate: float
    likelihood: str
    embedding_dimension: int
    cardinality: tuple[int, ...] = ()
    num_dynamic_feat: int = 0
    lags_seq: tuple[int, ...] = field(default=())

    @classmethod
    def from_hyperparameters(cls, hp: dict, cardinality: Sequence[int], num_dynamic_feat: int) -> "Network":
        freq = Frequency.parse(hp["time_freq"])
        return cls(time_freq=str(freq), prediction_length=hp["prediction_length"],
                   context_length=hp["context_length"], num_layers=hp["num_layers"], num_cells=hp["num_cells"],
                   dropout_rate=hp["dropout_rate"], likelihood=hp["likelihood"],
                   embedding_dimension=hp["embedding_dimension"], cardinality=tuple(cardinality),
                   num_dynamic_feat=num_dynamic_feat,
                   lags_seq=tuple(get_lags_for_frequency(freq.offset_freq)))

    @property
    def frequency(self) -> Frequency:
        return Frequency.parse(self.time_freq)

    def estimator(self, *, learning_rate: float = 1e-3, batch_size: int = 32, num_batches_per_epoch: int = 50,
                  num_samples: int = 100, trainer_kwargs: dict | None = None) -> DeepAREstimator:
        freq = self.frequency
        cats = list(self.cardinality)
        return DeepAREstimator(
            freq=freq.period_freq, prediction_length=self.prediction_length, context_length=self.context_length,
            num_layers=self.num_layers, hidden_size=self.num_cells, dropout_rate=self.dropout_rate,
            lr=learning_rate, distr_output=LIKELIHOODS[self.likelihood](),
            num_feat_dynamic_real=self.num_dynamic_feat, num_feat_static_cat=len(cats),
            cardinality=cats or None, embedding_dimension=[self.embedding_dimension] * len(cats) or None,
            lags_seq=list(self.lags_seq), time_features=time_features_from_frequency_str(freq.offset_freq),
            num_parallel_samples=num_samples, batch_size=batch_size, num_batches_per_epoch=num_batches_per_epoch,
            trainer_kwargs=trainer_kwargs or {})

    def entries(self, series: Sequence[Series]) -> list[dict[str, Any]]:
        """GluonTS data entries of `series` with the fields this network reads."""
        freq = self.frequency.period_freq
        out = []
        for s in series:
            entry: dict[str, Any] = {"start": pd.Period(s.start, freq=freq), "target": s.target}
            if self.cardinality:
                entry["feat_static_cat"] = np.asarray(s.cat, dtype=np.int64)
            if self.num_dynamic_feat:
                entry["feat_dynamic_real"] = s.dynamic_feat
            out.append(entry)
        return out


def batches_per_epoch(num_series: int, mini_batch_size: int) -> int:
    """An AWS epoch: about one training window per series."""
    return max(1, math.ceil(num_series / mini_batch_size))


def check_finite(module: torch.nn.Module, where: str) -> None:
    bad = [name for name, t in module.state_dict().items() if not torch.isfinite(t).all()]
    if bad:
        raise InputError(f"{where}: the network's {', '.join(bad[:3])} hold NaN or infinite values (the fit "
                         "diverged: lower learning_rate, or check the target's scale); no such model is saved or served")


def save(model_dir: Path, network: Network, module: torch.nn.Module) -> list[Path]:
    """The lightning module's DeepAR network weights (safetensors) and `network` (JSON)."""
    check_finite(module, "Training")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    weights = model_dir / WEIGHTS_FILE
    save_file({k: v.detach().cpu().contiguous() for k, v in module.model.state_dict().items()}, str(weights))
    meta = write_metadata(model_dir / META_FILE, FORMAT, FORMAT_VERSION, {"network": asdict(network)})
    return [weights, meta]


def load(model_dir: Path, num_samples: int = 100):
    """(network, GluonTS predictor) from `save`'s files; ValueError when they do not fit together."""
    model_dir = Path(model_dir)
    meta = read_metadata(model_dir / META_FILE, FORMAT, FORMAT_VERSION)
    fields = dict(meta["network"])
    network = Network(**{**fields, "cardinality": tuple(fields["cardinality"]), "lags_seq": tuple(fields["lags_seq"])})
    estimator = network.estimator(num_samples=num_samples)
    module = estimator.create_lightning_module()
    try:
        module.model.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)))
    except RuntimeError as exc:
        raise ValueError(f"{WEIGHTS_FILE} does not fit {META_FILE}: {exc}") from None
    check_finite(module, "Model")
    module.eval()
    return network, estimator.create_predictor(estimator.create_transformation(), module)
