"""Monte-Carlo tree search over the sequence of hyperparameter decisions.

UCT (Kocsis & Szepesvari, "Bandit based Monte-Carlo Planning", ECML 2006)
applied to architecture search as in Negrinho & Gordon, "DeepArchitect:
Automatically Designing and Training Deep Architectures" (2017) and Wang et
al., "AlphaX: eXploring Neural Architectures with Deep Neural Networks and
Monte Carlo Tree Search" (2019): one tree level per decision, a rollout
completes a partial architecture, the trial's score is backed up along the
path. `Int`/`Float` ranges are split into bins (as the REINFORCE
controller does): the tree decides a bin, progressively widened (Coulom
2007; Couetoux et al. 2011), and every trial draws a fresh value inside it.
"""

from __future__ import annotations

import math
from typing import Any

import keras_tuner
import numpy as np

from keras_nas._validation import check_number, check_positive_int
from keras_nas.tuners import _base, _oracle
from keras_nas.tuners.controller_base import _Decision

__all__ = ["MonteCarloTreeSearch", "MonteCarloTreeSearchOracle"]

_ROLLOUTS = ("best", "random")


class _Node:
    """One decision state: the values decided on the path from the root."""

    __slots__ = (
        "children",
        "n",
        "n_failed",
        "w",
        "best",
        "best_id",
        "pending",
        "exhausted",
        "terminal",
    )

    def __init__(self):
        self.children: dict[Any, _Node] = {}
        self.n = 0  # completed trials through this node
        self.n_failed = 0  # failed trials through this node
        self.w = 0.0  # sum of their rewards
        self.best = -math.inf  # best reward in the subtree
        self.best_id: str | None = None
        self.pending = 0  # running trials through this node
        self.exhausted = False  # every point below was proposed
        self.terminal = False  # all decisions made

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_failed": self.n_failed,
            "w": self.w,
            "best": None if self.best == -math.inf else self.best,
            "best_id": self.best_id,
            "pending": self.pending,
            "exhausted": self.exhausted,
            "terminal": self.terminal,
            "children": [
                [key, child.to_json()]
                for key, child in sorted(
                    self.children.items(), key=lambda kv: _sort_key(kv[0])
                )
            ],
        }


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, repr(value))


class MonteCarloTreeSearchOracle(_oracle.SearchOracle):
    """UCT over the ordered decisions of any keras-tuner space.

    The tree has one level per active hyperparameter, in the order of
    `HyperParameters.space`; under a conditional scope only the children
    activated by the parent's value become levels (sequential decisions).
    Each trial descends by UCT, expands one untried value, then a rollout
    decides the remaining hyperparameters.

    Continuous ranges (`Float` without `step`, and `Int`/`Float` grids of
    more than 32 values) are never decided as exact values, which a tree
    would then reuse in every trial through the node (the learning rate of
    the first trial, in every trial of a small search). The tree level of
    such a hyperparameter has `num_bins` children: equal intervals of
    keras-tuner's sampling scale (log bins for `sampling="log"`), the
    binning of the REINFORCE controller. A node opens a new bin (at random
    among the untried ones) while it has fewer than
    `ceil(widening_constant * visits ** widening_exponent)` (progressive
    widening), else UCT picks one; either way the trial draws a fresh value
    uniformly inside the bin. The statistics thus learn which region of the
    range is good, and no value is ever repeated. The trial's score is
    backed up along the expanded path; running trials count as visits
    (virtual loss) so parallel workers spread out. Subtrees whose points
    were all proposed are closed, so no point is proposed twice.

    Node values mix the mean and the best reward of the subtree
    (`max_weight`), as in single-player MCTS (Schadd et al., 2008), scaled to
    [0, 1] between a low quantile (`normalization_quantile`) and the best
    reward seen, which makes the exploration constant independent of the
    metric's scale and of a few very bad trials.

    Rollouts: `"best"` (default) completes the partial architecture with
    the decisions of the best trial found so far (each decision re-drawn at
    random with probability `rollout_epsilon`; random values before any
    trial completed), so an expansion tries a close variant of the best
    architecture with the decisions the tree chose: a local-search move
    whose position is guided by the tree statistics. Revisiting a branch
    whose early trials were poor then tests it with a good completion, so
    early decisions are not frozen by unlucky random rollouts. Continuous
    ranges are not copied: the best trial's exact value says nothing that
    its neighbours would not (the tree's bins hold what was learnt about the
    range), and copying it would freeze the range until the tree reaches
    that level; rollouts draw them afresh, as random search does (Bergstra
    & Bengio, JMLR 2012). `"random"` draws the remaining decisions uniformly
    (plain UCT).

    State: besides keras-tuner's own records, `get_state()` holds the RNG,
    the expansion depth of every trial and the few nodes added while
    avoiding duplicates. The tree, with all its statistics, is a function
    of these and the trial records, and is rebuilt exactly on reload.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them.
        max_trials: Maximum number of trials.
        exploration: UCT exploration constant on the [0, 1] value scale.
            Defaults to 0.3.
        max_weight: Weight of the subtree's best reward in a node's value
            (0: mean only, 1: best only). Defaults to 0.5.
        rollout: `"best"` or `"random"`. Defaults to `"best"`.
        rollout_epsilon: Per-decision probability of a random value in
            `"best"` rollouts. Defaults to 0.1.
        normalization_quantile: Quantile of the rewards mapped to 0.
            Defaults to 0.1.
        widening_constant, widening_exponent: Progressive widening of the
            bins of continuous `Int`/`Float` ranges. Defaults 1.0, 0.5.
        num_bins: Bins of a continuous range, from 2 to 32. Defaults to 8.
        seed: Integer seed; the same seed gives the same trials.
        hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.Oracle`.

    Example:

    ```python
    oracle = MonteCarloTreeSearchOracle(
        objective="val_accuracy", max_trials=100, seed=1
    )
    ```
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 100,
        exploration: float = 0.3,
        max_weight: float = 0.5,
        rollout: str = "best",
        rollout_epsilon: float = 0.1,
        normalization_quantile: float = 0.1,
        widening_constant: float = 1.0,
        widening_exponent: float = 0.5,
        num_bins: int = 8,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ):
        super().__init__(**_oracle.arguments_of(_oracle.SearchOracle, locals()))
        if rollout not in _ROLLOUTS:
            raise ValueError(
                f"Expected `rollout` to be one of {list(_ROLLOUTS)}. "
                f"Received: rollout={rollout!r}"
            )
        self.exploration = check_number("exploration", exploration, 0, math.inf)
        self.max_weight = check_number("max_weight", max_weight, 0, 1)
        self.rollout = rollout
        self.rollout_epsilon = check_number(
            "rollout_epsilon", rollout_epsilon, 0, 1
        )
        self.normalization_quantile = check_number(
            "normalization_quantile", normalization_quantile, 0, 1
        )
        self.widening_constant = check_number(
            "widening_constant", widening_constant, 1e-9, math.inf
        )
        self.widening_exponent = check_number(
            "widening_exponent", widening_exponent, 0, 1
        )
        self.num_bins = check_positive_int("num_bins", num_bins, 2, 32)
        # trial_id -> number of tree levels the trial expanded.
        self._depths: dict[str, int] = {}
        # Value paths of nodes added while avoiding duplicates.
        self._extra: list[list[Any]] = []
        self._root = _Node()
        self._rewards: list[float] = []
        self._pending_ids: set[str] = set()
        self._backed_up: set[str] = set()

    _state_settings = (
        "exploration",
        "max_weight",
        "rollout",
        "rollout_epsilon",
        "normalization_quantile",
        "widening_constant",
        "widening_exponent",
        "num_bins",
    )

    # -- tree bookkeeping ---------------------------------------------------

    def _path(self, values: dict[str, Any], depth: int | None = None):
        """Decision values of `values` (up to `depth`) and whether the
        path covers every decision."""
        decisions = _base.active_decisions(self.hyperparameters, values)
        path = []
        for hp in decisions:
            if hp.name not in values:
                break
            path.append(values[hp.name])
        complete = len(path) == len(decisions)
        if depth is not None and depth < len(path):
            return path[:depth], False
        return path, complete

    def _bins(self, hp) -> _Decision | None:
        """The bins of a continuous range; `None` for finite decisions."""
        if _base.candidate_values(hp) is not None:
            return None
        return _Decision(hp, self.num_bins)

    def _key(self, hp, value: Any) -> Any:
        """The child key of `value` at `hp`'s level: the value, or the
        index of its bin for a continuous range."""
        bins = self._bins(hp)
        return value if bins is None else bins.index(value)

    def _insert(self, path: list[Any], complete: bool) -> list[_Node]:
        """Adds the nodes of a value path; closes it if `complete` (and no
        level is a bin, which holds more points)."""
        hps = self.hyperparameters
        decided: dict[str, Any] = {}
        nodes, levels = [self._root], []
        for value in path:
            hp = _next_decision(hps, decided)
            decided[hp.name] = value
            levels.append(hp)
            key = self._key(hp, value)
            child = nodes[-1].children.get(key)
            if child is None:
                child = nodes[-1].children[key] = _Node()
            nodes.append(child)
        if complete and all(self._bins(hp) is None for hp in levels):
            nodes[-1].terminal = nodes[-1].exhausted = True
            # A node is closed once every candidate of its (finite) decision
            # has a closed child.
            for i in range(len(levels) - 1, -1, -1):
                parent = nodes[i]
                candidates = _base.candidate_values(levels[i])
                if (
                    candidates is None
                    or len(parent.children) < len(candidates)
                    or not all(c.exhausted for c in parent.children.values())
                ):
                    break
                parent.exhausted = True
        return nodes

    def _trial_nodes(self, trial_id: str) -> list[_Node]:
        trial = self.trials[trial_id]
        path, _ = self._path(
            trial.hyperparameters.values, self._depths.get(trial_id)
        )
        nodes = [self._root]
        decided: dict[str, Any] = {}
        for value in path:
            hp = _next_decision(self.hyperparameters, decided)
            decided[hp.name] = value
            node = nodes[-1].children.get(self._key(hp, value))
            if node is None:
                break
            nodes.append(node)
        return nodes

    def _sync_pending(self) -> None:
        ongoing = {t.trial_id for t in self.ongoing_trials.values()}
        for trial_id in self._pending_ids - ongoing:
            for node in self._trial_nodes(trial_id):
                node.pending -= 1
        for trial_id in ongoing - self._pending_ids:
            if trial_id in self._depths:
                for node in self._trial_nodes(trial_id):
                    node.pending += 1
        self._pending_ids = ongoing & set(self._depths)

    def _back_up(self, trial_id: str) -> None:
        if trial_id in self._backed_up or trial_id not in self._depths:
            return
        self._backed_up.add(trial_id)
        reward = _base.trial_reward(self, self.trials[trial_id])
        for node in self._trial_nodes(trial_id):
            if reward is None:
                node.n_failed += 1
                continue
            node.n += 1
            node.w += reward
            if reward > node.best:
                node.best, node.best_id = reward, trial_id
        if reward is not None:
            self._rewards.append(reward)

    def _rebuild(self) -> None:
        """Rebuilds the tree from the trial records (exactly)."""
        self._root = _Node()
        self._rewards = []
        self._pending_ids = set()
        self._backed_up = set()
        for trial_id in self.start_order:
            if trial_id in self._depths and trial_id in self.trials:
                values = self.trials[trial_id].hyperparameters.values
                self._insert(*self._path(values, self._depths[trial_id]))
        for path in self._extra:
            self._insert(list(path), self._is_complete(path))
        for trial_id in self.end_order:
            if trial_id in self.trials:
                self._back_up(trial_id)
        self._sync_pending()

    def _is_complete(self, path: list[Any]) -> bool:
        decided: dict[str, Any] = {}
        for value in path:
            hp = _next_decision(self.hyperparameters, decided)
            if hp is None:
                return False
            decided[hp.name] = value
        return _next_decision(self.hyperparameters, decided) is None

    # -- search -------------------------------------------------------------

    def _scale(self) -> tuple[float, float]:
        if not self._rewards:
            return 0.0, 1.0
        high = max(self._rewards)
        low = float(np.quantile(self._rewards, self.normalization_quantile))
        if high - low <= 0:
            low = min(self._rewards)
        if high - low <= 0:
            return high - 1.0, high
        return low, high

    def _value(self, node: _Node, low: float, high: float, default: float):
        if node.n == 0:
            if node.n_failed:
                return 0.0
            return default
        mean = (node.w + node.n_failed * low) / (node.n + node.n_failed)
        raw = (1.0 - self.max_weight) * mean + self.max_weight * node.best
        return min(max((raw - low) / (high - low), 0.0), 1.0)

    def _select_child(self, node: _Node, scale) -> Any:
        low, high = scale
        parent_visits = node.n + node.n_failed + node.pending
        default = self._value(node, low, high, 0.5)
        log_n = math.log(max(parent_visits, 1))
        best_key, best_score = None, -math.inf
        open_children = [
            (k, c) for k, c in node.children.items() if not c.exhausted
        ]
        order = self._rng.permutation(len(open_children))
        for i in order:
            key, child = open_children[int(i)]
            visits = child.n + child.n_failed + child.pending
            if visits == 0:
                return key
            score = self._value(child, low, high, default)
            score += self.exploration * math.sqrt(log_n / visits)
            if score > best_score:
                best_key, best_score = key, score
        return best_key

    def _descend(self, scale):
        """Selection + expansion. Returns (decided values, nodes)."""
        hps = self.hyperparameters
        decided: dict[str, Any] = {}
        node = self._root
        nodes = [node]
        while True:
            hp = _next_decision(hps, decided)
            if hp is None:
                return decided, nodes
            candidates = _base.candidate_values(hp)
            if candidates is not None:
                untried = [c for c in candidates if c not in node.children]
                if untried:
                    value = untried[int(self._rng.integers(len(untried)))]
                    decided[hp.name] = value
                    nodes.append(None)  # to be created if the trial runs
                    return decided, nodes
            else:
                bins = self._bins(hp)
                visits = node.n + node.n_failed + node.pending
                allowed = math.ceil(
                    self.widening_constant
                    * max(visits, 1) ** self.widening_exponent
                )
                untried = [
                    b for b in range(bins.size) if b not in node.children
                ]
                widen = untried and (
                    len(node.children) < allowed
                    or all(c.exhausted for c in node.children.values())
                )
                if widen:
                    index = untried[int(self._rng.integers(len(untried)))]
                    decided[hp.name] = bins.value(index, self._rng)
                    nodes.append(None)
                    return decided, nodes
            key = self._select_child(node, scale)
            if key is None:  # every child closed (stale flags)
                node.exhausted = True
                return None, nodes
            if candidates is None:  # a bin: a fresh value inside it
                decided[hp.name] = self._bins(hp).value(key, self._rng)
            else:
                decided[hp.name] = key
            node = node.children[key]
            nodes.append(node)

    def _rollout(self, decided: dict[str, Any], nodes: list) -> dict:
        source = None
        if self.rollout == "best" and self._root.best_id is not None:
            source = self.trials[self._root.best_id].hyperparameters.values
        if source is None:
            return _base.random_values(self.hyperparameters, self._rng, decided)
        fixed = set(decided)
        epsilon = self.rollout_epsilon

        def choose(hp, _):
            value = source.get(hp.name)
            if (
                hp.name in fixed
                or _base.candidate_values(hp) is None  # never copy a range
                or not _base.is_valid_value(hp, value)
                or self._rng.random() < epsilon
            ):
                return _base.sample_value(hp, self._rng)
            return value

        return _base.sequential_values(self.hyperparameters, choose, decided)

    def _propose(self, trial_id: str):
        # Origin "tree", or "random" (the fallback after collisions).
        self._sync_pending()
        scale = self._scale()
        attempts = 10 * max(len(self.hyperparameters.space), 1) + 20
        for _ in range(attempts):
            if self._root.exhausted:
                break
            decided, nodes = self._descend(scale)
            if decided is None:
                continue
            values = self._rollout(decided, nodes)
            depth = len(nodes) - 1
            if not _base.is_duplicate(self, values):
                self._depths[trial_id] = depth
                for node in self._insert(*self._path(values, depth)):
                    node.pending += 1
                self._pending_ids.add(trial_id)
                return values, {"origin": "tree"}
            # Duplicate: grow the tree one level along it, so repeated
            # collisions end in closed terminal nodes.
            path, complete = self._path(values)
            extra = path[: depth + 1]
            self._extra.append(extra)
            self._insert(extra, complete and len(extra) == len(path))
        # Fallback (e.g. continuous spaces crowded with collisions).
        values = self._unique_random()
        if values is not None:
            self._depths[trial_id] = 0
            self._root.pending += 1
            self._pending_ids.add(trial_id)
        return values, {"origin": "random"}

    def end_trial(self, trial) -> None:
        super().end_trial(trial)
        trial_id = trial.trial_id
        self._sync_pending()
        if trial_id in self.end_order:
            self._back_up(trial_id)

    # -- state --------------------------------------------------------------

    def tree_to_json(self) -> dict[str, Any]:
        """The tree with all node statistics, as nested JSON data."""
        return self._root.to_json()

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["depths"] = self._depths
        state["extra"] = self._extra
        return state

    def _after_reconcile(self) -> None:
        # Trials that ended after the last saved state (see
        # `_persistence.ResumableOracle`): the tree is derived from them.
        self._rebuild()

    def set_state(self, state: dict[str, Any]) -> None:
        # Older projects saved no `num_bins`: they used the default, 8.
        super().set_state({"num_bins": 8, **state})
        self._depths = dict(state["depths"])
        self._extra = [list(p) for p in state["extra"]]
        self._rebuild()


def _next_decision(hyperparameters, decided: dict[str, Any]):
    for hp in hyperparameters.space:
        if hp.name not in decided and _base.is_active_given(hp, decided):
            return hp
    return None


class MonteCarloTreeSearch(_base.NasTuner):
    """Tuner running `MonteCarloTreeSearchOracle` (UCT over decisions).

    Args:
        hypermodel: A `keras_tuner.HyperModel` (e.g. a `keras_nas.spaces`
            space) or a function `hp -> compiled keras.Model`.
        objective: The objective, e.g. `"val_accuracy"`.
        max_trials: Maximum number of trials.
        exploration, max_weight, rollout, rollout_epsilon,
        normalization_quantile, widening_constant, widening_exponent,
        num_bins: See `MonteCarloTreeSearchOracle`.
        seed: Integer seed.
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.RandomSearch`.
        estimator: Optional performance estimator (see `NasTuner`).
        **kwargs: Passed to `keras_tuner.Tuner`.

    Example:

    ```python
    tuner = MonteCarloTreeSearch(
        build_model, objective="val_accuracy", max_trials=30, seed=1
    )
    tuner.search(x, y, epochs=2, validation_split=0.2)
    ```
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 100,
        exploration: float = 0.3,
        max_weight: float = 0.5,
        rollout: str = "best",
        rollout_epsilon: float = 0.1,
        normalization_quantile: float = 0.1,
        widening_constant: float = 1.0,
        widening_exponent: float = 0.5,
        num_bins: int = 8,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        estimator: Any = None,
        **kwargs: Any,
    ):
        oracle = _oracle.make_oracle(MonteCarloTreeSearchOracle, locals())
        super().__init__(oracle, hypermodel, estimator=estimator, **kwargs)
