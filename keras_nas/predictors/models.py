"""Performance predictors: scores of architectures from their encodings.

Every predictor has the same interface: `fit(encodings, scores,
features=None)` learns from the encodings (rows of an
`ArchitectureEncoder`) of evaluated architectures and their scores, and
`predict(encodings, features=None)` returns a `(mean, std)` pair of arrays:
the predicted score and its uncertainty, which the acquisition functions of
`keras_nas.tuners` (expected improvement, Thompson sampling) use.
`features` are optional extra columns per architecture, e.g. zero-cost
scores (`keras_nas.estimation.zero_cost_score`); they are standardised with
the training set's mean and spread and appended to the encoding.

- `GaussianProcessPredictor`: a Gaussian process with an RBF kernel on the
  encoding (scikit-learn), the surrogate of NASBOT-style Bayesian
  optimisation over architectures (Kandasamy et al., NeurIPS 2018).
- `MLPEnsemblePredictor`: an ensemble of small fully connected networks
  trained from different initialisations, the mean and spread of their
  predictions (White et al., "BANANAS", AAAI 2021).
- `GradientBoostingPredictor`: an ensemble of gradient-boosted tree models
  on random subsamples (scikit-learn), the strong tree baseline of White et
  al., "How Powerful are Performance Predictors in Neural Architecture
  Search?", NeurIPS 2021.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from scipy.linalg import cho_solve
from scipy.spatial.distance import pdist, squareform
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.gaussian_process import GaussianProcessRegressor, kernels

from keras_nas._validation import check_positive_int, check_seed

__all__ = [
    "GaussianProcessPredictor",
    "GradientBoostingPredictor",
    "MLPEnsemblePredictor",
    "Predictor",
]


def _matrix(name: str, value: Any, columns: int | None = None) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected `{name}` to be a 2-D array of numbers. "
            f"Received: {name}={value!r}"
        ) from None
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(
            f"Expected `{name}` to be a non-empty 2-D array (one row per "
            f"architecture). Received: {name} of shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"Expected `{name}` to hold finite numbers only. "
            f"Received: {name} with {int(np.sum(~np.isfinite(array)))} "
            "non-finite entries"
        )
    if columns is not None and array.shape[1] != columns:
        raise ValueError(
            f"Expected `{name}` to have {columns} columns, as in `fit`. "
            f"Received: {name} of shape {array.shape}"
        )
    return array


class Predictor:
    """Base class: argument checks, score and feature scaling.

    Subclasses implement `_fit(x, y)` on standardised scores and
    `_predict(x) -> (mean, std)` in that standardised scale.

    Args:
        seed: Integer seed of the predictor's randomness (initialisations,
            subsamples); `None` for a random one.
    """

    def __init__(self, seed: int | None = None):
        self.seed = check_seed(seed)
        self._fitted = False

    def fit(
        self,
        encodings: Any,
        scores: Any,
        features: Any = None,
    ) -> Predictor:
        """Learns from evaluated architectures.

        Args:
            encodings: Array `(n, size)` of encodings, `n >= 1`.
            scores: Array `(n,)` of finite scores (larger or smaller is
                better: the predictor only regresses them).
            features: Optional array `(n, k)` of extra features per
                architecture (e.g. zero-cost scores).

        Returns:
            The predictor itself.
        """
        x = _matrix("encodings", encodings)
        y = np.asarray(scores, dtype=np.float64).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise ValueError(
                f"Expected one score per encoding ({x.shape[0]}). "
                f"Received: scores of length {y.shape[0]}"
            )
        if not np.all(np.isfinite(y)):
            raise ValueError(
                "Expected `scores` to be finite numbers (drop failed "
                f"trials). Received: scores={y.tolist()!r}"
            )
        self._columns = x.shape[1]
        self._num_features = None
        if features is not None:
            f = _matrix("features", features)
            if f.shape[0] != x.shape[0]:
                raise ValueError(
                    f"Expected one row of `features` per encoding "
                    f"({x.shape[0]}). Received: features of shape {f.shape}"
                )
            self._num_features = f.shape[1]
            self._f_mean = f.mean(axis=0)
            self._f_scale = f.std(axis=0) + 1e-12
            x = np.hstack([x, (f - self._f_mean) / self._f_scale])
        self._y_mean = float(y.mean())
        self._y_scale = float(y.std()) or 1.0
        self._fit(x, (y - self._y_mean) / self._y_scale)
        self._fitted = True
        return self

    def predict(
        self, encodings: Any, features: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted scores and their uncertainty.

        Args:
            encodings: Array `(m, size)` of encodings.
            features: The extra features, if `fit` had some.

        Returns:
            `(mean, std)`, two arrays of shape `(m,)` in the scale of the
            scores.
        """
        if not self._fitted:
            raise ValueError(
                "Expected a fitted predictor: call `fit(encodings, scores)` "
                "first. Received: an unfitted predictor"
            )
        x = _matrix("encodings", encodings, self._columns)
        if (features is None) != (self._num_features is None):
            raise ValueError(
                "Expected `features` exactly when `fit` had them. Received: "
                f"features={'None' if features is None else 'an array'}"
            )
        if features is not None:
            f = _matrix("features", features, self._num_features)
            x = np.hstack([x, (f - self._f_mean) / self._f_scale])
        mean, std = self._predict(x)
        return (
            mean * self._y_scale + self._y_mean,
            np.maximum(std, 0.0) * self._y_scale,
        )

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


#: Grid of the GP's kernel fit: length scales (times the median distance
#: between the training encodings) and noise levels (of unit-variance scores).
_LENGTH_FACTORS = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
_NOISE_LEVELS = (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0)


def _median_distance(x: np.ndarray) -> float:
    upper = pdist(x, "sqeuclidean")
    upper = np.sqrt(upper[upper > 1e-12])
    return float(np.median(upper)) if upper.size else 1.0


#: scikit-learn's `GaussianProcessRegressor(alpha=...)` default: jitter.
_JITTER = 1e-10


def _grid_fit(x: np.ndarray, y: np.ndarray, scale: float) -> tuple:
    """(length scale, noise) of highest marginal likelihood on the grid.

    The likelihood of `1 * RBF(l) + White(noise)` (scikit-learn's kernel
    and formula, its jitter included), computed from one distance matrix:
    a fixed grid instead of L-BFGS is deterministic and has no flat-
    likelihood runs to the bounds, and one Cholesky factorisation per grid
    point without scikit-learn's per-call kernel bookkeeping keeps a refit
    at a few hundred architectures in the milliseconds.
    """
    d2 = squareform(pdist(x, "sqeuclidean"))
    eye = np.eye(len(x))
    best, best_theta = -np.inf, (scale, _NOISE_LEVELS[0])
    for factor in _LENGTH_FACTORS:
        length = scale * factor
        k = np.exp(-0.5 * d2 / length**2)
        for noise in _NOISE_LEVELS:
            try:
                chol = np.linalg.cholesky(k + (noise + _JITTER) * eye)
            except np.linalg.LinAlgError:
                continue
            alpha = cho_solve((chol, True), y)
            value = -0.5 * y @ alpha - np.log(np.diag(chol)).sum()
            if value > best:
                best, best_theta = value, (length, noise)
    return best_theta


class GaussianProcessPredictor(Predictor):
    """A Gaussian process on the encoding (scikit-learn).

    Kernel `c * RBF(l) + white`: the RBF of the Euclidean distance between
    encodings, which for one-hot and path encodings is a function of the
    number of differing decisions or paths (the distance of
    `ArchitectureEncoder.distance`). The scores are standardised (amplitude
    `c = 1`); the length scale and the noise are chosen at every `fit` by
    marginal likelihood on a fixed grid (9 length scales from 1/4 to 4
    times the median distance between the training encodings, 6 noise
    levels from 1e-3 to 1): deterministic, and a refit takes a few tens of
    milliseconds at a few hundred architectures.

    Args:
        seed: Integer seed (kept for the common interface; the fit is
            deterministic).

    Example:

    ```python
    gp = GaussianProcessPredictor(seed=1).fit(x_train, y_train)
    mean, std = gp.predict(x_candidates)
    ```
    """

    def __init__(self, seed: int | None = None):
        super().__init__(seed)

    def _fit(self, x, y):
        # Amplitude 1 (the scores are standardised); length scale and noise
        # chosen on a grid by marginal likelihood (`_grid_fit`).
        length, noise = _grid_fit(x, y, _median_distance(x))
        kernel = kernels.ConstantKernel(1.0, "fixed") * kernels.RBF(
            length, "fixed"
        ) + kernels.WhiteKernel(noise, "fixed")
        self._gp = GaussianProcessRegressor(
            kernel,
            optimizer=None,
            alpha=_JITTER,
            normalize_y=False,
            random_state=self.seed,
        ).fit(x, y)

    def _predict(self, x):
        mean, std = self._gp.predict(x, return_std=True)
        return mean, std

    def predict_joint(self, encodings: Any) -> tuple[np.ndarray, np.ndarray]:
        """The joint posterior at `encodings`: mean `(m,)` and covariance
        `(m, m)` in the scale of the scores (the noise on the diagonal, as
        in `predict`'s std); for conditioning on a few of them.

        Args:
            encodings: Array `(m, size)` (a predictor fitted without
                `features`).

        Returns:
            `(mean, cov)`.
        """
        x = _matrix("encodings", encodings, self._columns)
        mean, cov = self._gp.predict(x, return_cov=True)
        return mean * self._y_scale + self._y_mean, cov * self._y_scale**2

    def sample(
        self, encodings: Any, rng: np.random.Generator, features: Any = None
    ) -> np.ndarray:
        """One joint draw from the posterior at `encodings` (Thompson).

        Args:
            encodings: Array `(m, size)`.
            rng: The NumPy generator to draw with.
            features: The extra features, if `fit` had some.

        Returns:
            An array `(m,)` in the scale of the scores.
        """
        x = _matrix("encodings", encodings, self._columns)
        if features is not None:
            f = _matrix("features", features, self._num_features)
            x = np.hstack([x, (f - self._f_mean) / self._f_scale])
        mean, cov = self._gp.predict(x, return_cov=True)
        cov = 0.5 * (cov + cov.T) + 1e-9 * np.eye(len(mean))
        vals, vecs = np.linalg.eigh(cov)
        noise = rng.standard_normal(len(mean))
        draw = mean + vecs @ (np.sqrt(np.maximum(vals, 0.0)) * noise)
        return draw * self._y_scale + self._y_mean


#: Encodings at least this wide and at most this dense train the first
#: layer with sparse products (the narrow NAS-Bench-201 encodings keep the
#: dense ones: at 84 columns they are as fast).
_SPARSE_WIDTH = 512
_SPARSE_DENSITY = 0.1


class MLPEnsemblePredictor(Predictor):
    """An ensemble of small MLPs (White et al., "BANANAS", AAAI 2021).

    `num_networks` fully connected ReLU networks, each from its own random
    initialisation, are trained with full-batch Adam on the mean absolute
    error of the standardised scores (BANANAS' loss); the prediction is the
    ensemble's mean and its standard deviation. Written in NumPy, all
    members train at once as batched matrix products, so a refit on
    hundreds of architectures takes a fraction of a second on a CPU.

    Args:
        seed: Integer seed of the initialisations.
        num_networks: Members of the ensemble. Defaults to 5, as in
            BANANAS.
        hidden_units: Width of each hidden layer. Defaults to (32, 32):
            BANANAS' 10 x 20 layers need minibatches and many more steps
            for a similar fit on a few hundred points.
        steps: Full-batch Adam steps. Defaults to 150: on a hundred
            architectures twice as many fit closer without ranking better.
        learning_rate: Adam's step size. Defaults to 0.01, as in BANANAS.
        weight_decay: L2 penalty on the weights. Defaults to 1e-4, a light
            guard against fitting the noise of tens of points.
        initial_weights: None (each member starts from a random
            initialisation) or the `weights` of an earlier fit with the
            same number of members, layer sizes and encoding size, to
            continue training from (a warm start; `steps` may then be 0:
            no training, the earlier networks as they are). Defaults to
            None.
        batch_size: None (full-batch steps) or the rows of a random
            minibatch per step when there are more architectures, so a
            step's cost stops growing with them. Defaults to None.

    Example:

    ```python
    mlp = MLPEnsemblePredictor(seed=1).fit(x_train, y_train)
    mean, std = mlp.predict(x_candidates)
    # One more architecture: a few steps from the previous weights.
    more = MLPEnsemblePredictor(
        seed=1, steps=40, initial_weights=mlp.weights
    ).fit(x_more, y_more)
    ```
    """

    def __init__(
        self,
        seed: int | None = None,
        num_networks: int = 5,
        hidden_units: tuple[int, ...] = (32, 32),
        steps: int = 150,
        learning_rate: float = 0.01,
        weight_decay: float = 1e-4,
        initial_weights: list[np.ndarray] | None = None,
        batch_size: int | None = None,
    ):
        super().__init__(seed)
        check_positive_int("num_networks", num_networks)
        self.batch_size = check_positive_int(
            "batch_size", batch_size, allow_none=True
        )
        check_positive_int(
            "steps", steps, minimum=0 if initial_weights is not None else 1
        )
        hidden_units = tuple(hidden_units)
        if not hidden_units or any(
            isinstance(u, bool) or not isinstance(u, int) or u < 1
            for u in hidden_units
        ):
            raise ValueError(
                "Expected `hidden_units` to be a non-empty sequence of "
                f"positive integers. Received: hidden_units={hidden_units!r}"
            )
        if not learning_rate > 0 or not weight_decay >= 0:
            raise ValueError(
                "Expected `learning_rate` > 0 and `weight_decay` >= 0. "
                f"Received: learning_rate={learning_rate!r}, "
                f"weight_decay={weight_decay!r}"
            )
        self.num_networks = num_networks
        self.hidden_units = hidden_units
        self.steps = steps
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.initial_weights = (
            None if initial_weights is None else list(initial_weights)
        )

    @property
    def weights(self) -> list[np.ndarray]:
        """Copies of the fitted networks' weights and biases, stacked over
        the members (for `initial_weights` of a later fit, or saving)."""
        if not self._fitted:
            raise ValueError(
                "Expected a fitted predictor: call `fit(encodings, scores)` "
                "first. Received: an unfitted predictor"
            )
        return [p.copy() for p in self._params]

    def _initial_params(self, columns: int) -> list[np.ndarray]:
        e = self.num_networks
        sizes = [columns, *self.hidden_units, 1]
        shapes = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            shapes += [(e, fan_in, fan_out), (e, 1, fan_out)]
        if self.initial_weights is not None:
            got = [np.shape(w) for w in self.initial_weights]
            if got != shapes:
                raise ValueError(
                    f"Expected `initial_weights` of shapes {shapes} (the "
                    "members, layers and encoding size of this fit). "
                    f"Received: initial_weights of shapes {got}"
                )
            return [
                np.array(w, dtype=np.float64) for w in self.initial_weights
            ]
        rng = np.random.default_rng(self.seed)
        params = []
        for shape in shapes:
            if len(params) % 2:  # A bias.
                params.append(np.zeros(shape))
            else:
                scale = np.sqrt(2.0 / shape[1])
                params.append(rng.normal(0.0, scale, shape))
        return params

    def _fit(self, x_all, y):
        e, n = self.num_networks, self.batch_size or x_all.shape[0]
        params = self._initial_params(x_all.shape[1])
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        beta1, beta2, lr = 0.9, 0.999, self.learning_rate
        target_all = y[None, :, None]
        if (
            x_all.shape[1] >= _SPARSE_WIDTH
            and np.count_nonzero(x_all) < _SPARSE_DENSITY * x_all.size
        ):  # E.g. the path encoding of a DARTS-like cell: 1,600 columns.
            x_all = sparse.csr_matrix(x_all)
        batches = None
        if n < x_all.shape[0]:
            batches = np.random.default_rng(
                None if self.seed is None else [self.seed, 1]
            )
        else:
            n, x, target = x_all.shape[0], x_all, target_all
        for step in range(1, self.steps + 1):
            if batches is not None:
                rows = batches.choice(x_all.shape[0], n, replace=False)
                x, target = x_all[rows], target_all[:, rows]
            acts = self._forward(params, x)
            grad = np.sign(acts[-1] - target) / n  # d MAE / d output
            grads = [None] * len(params)
            for k in range(len(params) - 2, -1, -2):
                if k:
                    grads[k] = acts[k // 2].transpose(0, 2, 1) @ grad
                else:  # The input is shared: one (d, e * h) product.
                    flat = grad.transpose(1, 0, 2).reshape(n, -1)
                    grads[k] = (x.T @ flat).reshape(x.shape[1], e, -1)
                    grads[k] = grads[k].transpose(1, 0, 2)
                grads[k] += self.weight_decay * params[k]
                grads[k + 1] = grad.sum(axis=1, keepdims=True)
                if k:
                    grad = (grad @ params[k].transpose(0, 2, 1)) * (
                        acts[k // 2] > 0
                    )
            correction = np.sqrt(1 - beta2**step) / (1 - beta1**step)
            for p, g, mk, vk in zip(params, grads, m, v, strict=True):
                mk *= beta1
                mk += (1 - beta1) * g
                vk *= beta2
                vk += (1 - beta2) * g * g
                p -= lr * correction * mk / (np.sqrt(vk) + 1e-8)
        self._params = params

    @staticmethod
    def _forward(params, x):
        # Layer 1 as one (n, d) x (d, e * h) product, then batched per member.
        e, d, h = params[0].shape
        first = (x @ params[0].transpose(1, 0, 2).reshape(d, e * h)).reshape(
            x.shape[0], e, h
        )
        acts = [x, first.transpose(1, 0, 2) + params[1]]
        for k in range(2, len(params), 2):
            acts[-1] = np.maximum(acts[-1], 0.0)
            acts.append(acts[-1] @ params[k] + params[k + 1])
        return acts

    def _members(self, x):
        return self._forward(self._params, x)[-1][:, :, 0]

    def _predict(self, x):
        members = self._members(x)
        return members.mean(axis=0), members.std(axis=0)


class GradientBoostingPredictor(Predictor):
    """Gradient-boosted trees on the encoding (scikit-learn).

    `num_models` `GradientBoostingRegressor`s, each fitted on its own random
    80% subsample of the trees' rows (stochastic gradient boosting); the
    prediction is their mean and standard deviation.

    Args:
        seed: Integer seed of the subsamples.
        num_models: Members of the ensemble. Defaults to 5, enough for a
            usable spread at a fifth of a single large model's cost.
        num_trees: Boosting rounds per member. Defaults to 100,
            scikit-learn's default.
        max_depth: Depth of each tree. Defaults to 3, scikit-learn's
            default.
        learning_rate: Shrinkage. Defaults to 0.1, scikit-learn's default.

    Example:

    ```python
    gbt = GradientBoostingPredictor(seed=1).fit(x_train, y_train)
    mean, std = gbt.predict(x_candidates)
    ```
    """

    def __init__(
        self,
        seed: int | None = None,
        num_models: int = 5,
        num_trees: int = 100,
        max_depth: int = 3,
        learning_rate: float = 0.1,
    ):
        super().__init__(seed)
        for name, value in (
            ("num_models", num_models),
            ("num_trees", num_trees),
            ("max_depth", max_depth),
        ):
            check_positive_int(name, value)
        if not learning_rate > 0:
            raise ValueError(
                "Expected `learning_rate` > 0. "
                f"Received: learning_rate={learning_rate!r}"
            )
        self.num_models = num_models
        self.num_trees = num_trees
        self.max_depth = max_depth
        self.learning_rate = float(learning_rate)

    def _fit(self, x, y):
        rng = np.random.default_rng(self.seed)
        subsample = 0.8 if len(y) >= 5 else 1.0
        self._models = [
            GradientBoostingRegressor(
                n_estimators=self.num_trees,
                max_depth=self.max_depth,
                learning_rate=self.learning_rate,
                subsample=subsample,
                random_state=int(rng.integers(2**31 - 1)),
            ).fit(x, y)
            for _ in range(self.num_models)
        ]

    def _predict(self, x):
        members = np.stack([m.predict(x) for m in self._models])
        return members.mean(axis=0), members.std(axis=0)
