"""Linear Learner's loss functions, vectorised over models.

Every function takes the linear outputs `z` of all models for a mini-batch and the labels `y`,
and returns the per-record, per-model loss, shape (n, num_models). Scalar-output losses receive
`z` shaped (n, num_models) and `y` shaped (n, 1) so that it broadcasts; `softmax_loss` receives
`z` shaped (n, num_models, num_classes) and integer labels shaped (n,).

Formulas (e = y - z, labels of binary losses in {0, 1}):

    logistic                       softplus(z) - y z                (cross-entropy on sigmoid(z))
    hinge_loss                     max(0, margin - s z),  s = 2y - 1
    squared_loss                   e^2
    absolute_loss                  |e|
    eps_insensitive_squared_loss   max(0, e^2 - eps^2)
    eps_insensitive_absolute_loss  max(0, |e| - eps)
    quantile_loss                  max(q e, (q - 1) e)
    huber_loss                     e^2 / 2 if |e| < delta else delta (|e| - delta / 2)
    softmax_loss                   logsumexp(z) - z[y]

The name under which each loss is logged (`<name>_objective`) follows AWS's logs:
`binary_classification_cross_entropy_objective`, `multiclass_cross_entropy_objective`,
`mse_objective`; the others are the loss's own name with `_objective` appended.

`GRADIENTS` holds each loss's derivative in z, same shapes as the loss's z, written out so that a
training step needs no autograd graph (building and walking one took a fifth of a 1000-record,
32-model logistic step). At a kink each takes the value autograd gives: 0 where `relu`'s argument
or `abs`'s is 0, half of each side where `quantile_loss`'s two lines meet.
"""

from __future__ import annotations

import torch

BINARY_LOSSES = ("logistic", "hinge_loss")
MULTICLASS_LOSSES = ("softmax_loss",)
REGRESSION_LOSSES = (
    "squared_loss", "absolute_loss", "eps_insensitive_squared_loss", "eps_insensitive_absolute_loss",
    "quantile_loss", "huber_loss",
)
LOSSES_BY_PREDICTOR = {
    "binary_classifier": BINARY_LOSSES,
    "multiclass_classifier": MULTICLASS_LOSSES,
    "regressor": REGRESSION_LOSSES,
}
DEFAULT_LOSS = {
    "binary_classifier": "logistic",
    "multiclass_classifier": "softmax_loss",
    "regressor": "squared_loss",
}

_OBJECTIVE_NAMES = {
    "logistic": "binary_classification_cross_entropy_objective",
    "softmax_loss": "multiclass_cross_entropy_objective",
    "squared_loss": "mse_objective",
}


def objective_name(loss: str) -> str:
    """The metric token AWS prints for the training objective, e.g. `mse_objective`."""
    return _OBJECTIVE_NAMES.get(loss, f"{loss}_objective")


def logistic(z, y, **_):
    # softplus(z) as max(z, 0) + log(1 + e^-|z|): torch's CPU softplus and log1p run about 6x slower
    # than its log, and log(1 + e) differs from log1p(e) by float32's rounding of 1 + e (< 1e-7).
    # max(z, 0) written (z + |z|) / 2 so that autograd's slope at z = 0 is sigmoid's, 1/2.
    a = z.abs()
    return 0.5 * (z + a) + torch.log(1 + torch.exp(-a)) - y * z


def hinge_loss(z, y, margin=1.0, **_):
    return torch.relu(margin - (2.0 * y - 1.0) * z)


def squared_loss(z, y, **_):
    return (y - z) ** 2


def absolute_loss(z, y, **_):
    return (y - z).abs()


def eps_insensitive_squared_loss(z, y, eps=0.01, **_):
    return torch.relu((y - z) ** 2 - eps * eps)


def eps_insensitive_absolute_loss(z, y, eps=0.01, **_):
    return torch.relu((y - z).abs() - eps)


def quantile_loss(z, y, quantile=0.5, **_):
    e = y - z
    return torch.maximum(quantile * e, (quantile - 1.0) * e)


def huber_loss(z, y, delta=1.0, **_):
    a = (y - z).abs()
    return torch.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta))


def softmax_loss(z, y, **_):
    # z: (n, M, C); y: (n,) int64
    idx = y.view(-1, 1, 1).expand(-1, z.shape[1], 1)
    return torch.logsumexp(z, dim=2) - z.gather(2, idx).squeeze(2)


def logistic_gradient(z, y, **_):
    return torch.sigmoid(z) - y


def hinge_loss_gradient(z, y, margin=1.0, **_):
    s = 2.0 * y - 1.0
    return torch.where(margin - s * z > 0, -s, 0.0)


def squared_loss_gradient(z, y, **_):
    return 2.0 * (z - y)


def absolute_loss_gradient(z, y, **_):
    return torch.sign(z - y)


def eps_insensitive_squared_loss_gradient(z, y, eps=0.01, **_):
    e = z - y
    return torch.where(e * e - eps * eps > 0, 2.0 * e, 0.0)


def eps_insensitive_absolute_loss_gradient(z, y, eps=0.01, **_):
    e = z - y
    return torch.where(e.abs() - eps > 0, torch.sign(e), 0.0)


def quantile_loss_gradient(z, y, quantile=0.5, **_):
    e = y - z
    above, below = quantile * e, (quantile - 1.0) * e
    return torch.where(above > below, -quantile, torch.where(above < below, 1.0 - quantile, 0.5 - quantile))


def huber_loss_gradient(z, y, delta=1.0, **_):
    e = z - y
    return torch.where(e.abs() < delta, e, delta * torch.sign(e))


def softmax_loss_gradient(z, y, **_):
    # softmax(z) minus the one-hot label, (n, M, C)
    idx = y.view(-1, 1, 1).expand(-1, z.shape[1], 1)
    return torch.softmax(z, dim=2).scatter_add_(2, idx, torch.full(idx.shape, -1.0, dtype=z.dtype, device=z.device))


LOSS_FUNCTIONS = {
    "logistic": logistic,
    "hinge_loss": hinge_loss,
    "squared_loss": squared_loss,
    "absolute_loss": absolute_loss,
    "eps_insensitive_squared_loss": eps_insensitive_squared_loss,
    "eps_insensitive_absolute_loss": eps_insensitive_absolute_loss,
    "quantile_loss": quantile_loss,
    "huber_loss": huber_loss,
    "softmax_loss": softmax_loss,
}

GRADIENTS = {name: globals()[f"{name}_gradient"] for name in LOSS_FUNCTIONS}
