"""Parametric learning-curve fits and their extrapolation (NumPy only).

A simplified version of the learning-curve extrapolation of Domhan,
Springenberg and Hutter, "Speeding up Automatic Hyperparameter Optimization
of Deep Neural Networks by Extrapolation of Learning Curves", IJCAI 2015.

What is kept from the paper: a set of parametric curve families (their
`pow3`, `exp3`, `ilog2` and `log_power`, with `x` the 1-based epoch), fitted
to the partial curve of a running trial, and a probability that the value
at the last epoch beats the best value seen so far.

What is simplified (be aware of it when trusting the numbers):

- Each family is fitted by least squares, not sampled by MCMC. The fit uses
  variable projection: for fixed nonlinear parameters (an exponent, a rate)
  the linear coefficients are an ordinary least-squares solution, and the
  nonlinear parameters are found by a grid search refined by successive
  zooms. It needs NumPy only and is deterministic.
- The families are combined with equal weights, not by posterior (sampled)
  mixture weights: with a handful of noisy points the best-fitting family
  is often an over-fit, so a stop needs every family to agree.
- The predictive distribution of each family at the target epoch is a
  Gaussian: the fitted value, with the variance of ordinary least squares
  for its linear coefficients (noise estimated from the residuals) plus the
  noise itself. The uncertainty of the nonlinear parameters is ignored, and
  there is no prior forcing curves to increase: a family may fit a
  decreasing curve. Predictions can be clipped to a `value_range`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "CURVE_FAMILIES",
    "CurveFit",
    "fit_learning_curve",
    "probability_to_beat",
]


@dataclasses.dataclass(frozen=True)
class _Family:
    """`y = basis(x, theta) @ beta`; `theta` searched on a log-spaced grid."""

    basis: Callable[[np.ndarray, tuple[float, ...]], np.ndarray]
    grids: tuple[tuple[float, float], ...]  # (low, high) per theta, > 0
    formula: str


def _pow3(x, theta):
    (alpha,) = theta
    return np.stack([np.ones_like(x), -(x ** (-alpha))], axis=-1)


def _exp3(x, theta):
    (rate,) = theta
    return np.stack([np.ones_like(x), -np.exp(-rate * x)], axis=-1)


def _ilog2(x, theta):
    return np.stack([np.ones_like(x), -1.0 / np.log(x + 1.0)], axis=-1)


def _log_power(x, theta):
    scale, power = theta
    return (1.0 / (1.0 + (x / scale) ** (-power)))[:, None]


#: The curve families, by the names of Domhan et al. (2015). `x` is the
#: 1-based epoch; linear coefficients are fitted, `theta` searched.
CURVE_FAMILIES: dict[str, _Family] = {
    "pow3": _Family(_pow3, ((0.05, 4.0),), "c - a * x**(-alpha)"),
    "exp3": _Family(_exp3, ((0.01, 3.0),), "c - a * exp(-b * x)"),
    "ilog2": _Family(_ilog2, (), "c - a / log(x + 1)"),
    "log_power": _Family(
        _log_power, ((0.01, 100.0), (0.05, 5.0)), "a / (1 + (x / s)**(-p))"
    ),
}


@dataclasses.dataclass(frozen=True)
class CurveFit:
    """A least-squares fit of one curve family.

    Attributes:
        family: the family's name (a key of `CURVE_FAMILIES`).
        theta: the nonlinear parameters (e.g. `(alpha,)` for `pow3`).
        beta: the linear coefficients (e.g. `(c, a)` for `pow3`).
        rss: residual sum of squares.
        num_points: how many points were fitted.
    """

    family: str
    theta: tuple[float, ...]
    beta: tuple[float, ...]
    rss: float
    num_points: int

    @property
    def num_params(self) -> int:
        return len(self.theta) + len(self.beta)

    @property
    def bic(self) -> float:
        n = self.num_points
        return n * math.log(max(self.rss / n, 1e-12)) + self.num_params * (
            math.log(n)
        )

    @property
    def noise_variance(self) -> float:
        dof = max(self.num_points - self.num_params, 1)
        return max(self.rss / dof, 1e-10)

    def predict(self, x) -> np.ndarray:
        """The fitted curve at the 1-based epochs `x`."""
        x = np.asarray(x, dtype="float64").reshape(-1)
        return _basis(self.family, x, self.theta) @ np.asarray(self.beta)

    def predictive(self, x: float, xs: np.ndarray) -> tuple[float, float]:
        """Mean and variance at epoch `x` (`xs`: the fitted epochs)."""
        g = _basis(self.family, np.asarray([float(x)]), self.theta)[0]
        design = _basis(self.family, xs, self.theta)
        gram = np.linalg.pinv(design.T @ design)
        var = self.noise_variance * (1.0 + float(g @ gram @ g))
        return float(g @ np.asarray(self.beta)), var


def _basis(family: str, x: np.ndarray, theta) -> np.ndarray:
    return CURVE_FAMILIES[family].basis(x, tuple(theta))


def _solve(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    if not np.all(np.isfinite(design)):
        return np.zeros(design.shape[1]), math.inf
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    rss = float(np.sum((design @ beta - y) ** 2))
    return beta, rss if math.isfinite(rss) else math.inf


def _fit_family(name: str, x: np.ndarray, y: np.ndarray) -> CurveFit:
    family = CURVE_FAMILIES[name]
    limits = [(math.log(lo), math.log(hi)) for lo, hi in family.grids]
    bounds = list(limits)
    best = (math.inf, (), np.zeros(0))
    # Grid search in log space, then zoom around the best point.
    steps = 60 if len(bounds) == 1 else 24
    for _ in range(4 if bounds else 1):
        axes = [np.linspace(lo, hi, steps) for lo, hi in bounds]
        mesh = np.meshgrid(*axes, indexing="ij") if axes else []
        points = np.stack([m.ravel() for m in mesh], -1) if axes else [()]
        for log_theta in points:
            theta = tuple(float(v) for v in np.exp(log_theta))
            with np.errstate(all="ignore"):
                beta, rss = _solve(_basis(name, x, theta), y)
            if rss < best[0]:
                best = (rss, theta, beta)
        if not bounds or not math.isfinite(best[0]):
            break
        widths = [(hi - lo) * 4.0 / (steps - 1) for lo, hi in bounds]
        bounds = [
            (max(math.log(t) - w / 2, lo), min(math.log(t) + w / 2, hi))
            for t, w, (lo, hi) in zip(best[1], widths, limits, strict=True)
        ]
    rss, theta, beta = best
    return CurveFit(name, theta, tuple(float(b) for b in beta), rss, len(x))


def fit_learning_curve(
    values: Sequence[float],
    epochs: Sequence[float] | None = None,
    families: Sequence[str] = ("pow3", "exp3", "ilog2", "log_power"),
) -> list[CurveFit]:
    """Fits parametric curve families to a (partial) learning curve.

    A simplified take on Domhan et al., "Speeding up Automatic
    Hyperparameter Optimization of Deep Neural Networks by Extrapolation of
    Learning Curves" (IJCAI 2015): least squares instead of MCMC, see the
    module docstring.

    Args:
        values: the observed metric values (e.g. validation accuracy).
        epochs: their 1-based epochs (default `1, 2, ..., len(values)`).
        families: names of `CURVE_FAMILIES` to fit. A family is skipped when
            it has at least as many parameters as there are points.

    Returns:
        The fits, best (lowest BIC) first.

    Example:

    ```python
    epochs = np.arange(1, 11)
    fits = fit_learning_curve(0.9 - 0.5 * epochs**-1.2, epochs)
    fits[0].family, fits[0].predict([50])  # 'pow3', ~[0.8954]
    ```
    """
    y = np.asarray(values, dtype="float64").reshape(-1)
    x = (
        np.arange(1, len(y) + 1, dtype="float64")
        if epochs is None
        else np.asarray(epochs, dtype="float64").reshape(-1)
    )
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(
            "Expected `values` and `epochs` of the same, non-zero length. "
            f"Received: len(values)={len(y)}, len(epochs)={len(x)}"
        )
    if np.any(x < 1) or not np.all(np.isfinite(y)):
        raise ValueError(
            "Expected 1-based `epochs` (>= 1) and finite `values`. "
            f"Received: epochs={x.tolist()}, values={y.tolist()}"
        )
    unknown = [f for f in families if f not in CURVE_FAMILIES]
    if unknown or not families:
        raise ValueError(
            f"Expected `families` among {sorted(CURVE_FAMILIES)}. "
            f"Received: families={list(families)!r}"
        )
    fits = []
    for name in families:
        family = CURVE_FAMILIES[name]
        num_params = (
            len(family.grids) + _basis(name, x[:1], _mid(name)).shape[1]
        )
        if num_params >= len(x):
            continue
        fit = _fit_family(name, x, y)
        if math.isfinite(fit.rss):
            fits.append(fit)
    return sorted(fits, key=lambda f: f.bic)


def _mid(name: str) -> tuple[float, ...]:
    return tuple(math.sqrt(lo * hi) for lo, hi in CURVE_FAMILIES[name].grids)


def probability_to_beat(
    fits: Sequence[CurveFit],
    epochs: Sequence[float],
    target_epoch: float,
    best: float,
    direction: str = "max",
    value_range: tuple[float, float] | None = None,
) -> float:
    """Probability that the curve's value at `target_epoch` beats `best`.

    An equal-weight mixture of one Gaussian per fitted family (see the module
    docstring for what this simplifies from Domhan et al., 2015).

    Args:
        fits: fits from `fit_learning_curve` on the points at `epochs`.
        epochs: the 1-based epochs that were fitted.
        target_epoch: the 1-based epoch to predict (e.g. the last one).
        best: the value to beat.
        direction: `"max"` (beat = exceed) or `"min"` (beat = go below).
        value_range: optional `(low, high)` the metric lives in (e.g.
            `(0, 1)` for accuracy); predicted means are clipped to it.

    Returns:
        A probability in [0, 1]; 1.0 when there are no fits (no evidence).
    """
    if direction not in ("max", "min"):
        raise ValueError(
            "Expected `direction` to be 'max' or 'min'. "
            f"Received: direction={direction!r}"
        )
    if not fits:
        return 1.0
    xs = np.asarray(epochs, dtype="float64").reshape(-1)
    weight = 1.0 / len(fits)
    total = 0.0
    for fit in fits:
        mean, var = fit.predictive(target_epoch, xs)
        if value_range is not None:
            mean = min(max(mean, value_range[0]), value_range[1])
        z = (best - mean) / math.sqrt(var)
        above = 0.5 * math.erfc(z / math.sqrt(2.0))
        total += weight * (above if direction == "max" else 1.0 - above)
    return float(min(max(total, 0.0), 1.0))
