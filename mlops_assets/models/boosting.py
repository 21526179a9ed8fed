"""LightGBM boosters made of other boosters: a seed bag (the mean of several boosters'
outputs) and a continuation (one booster boosted further from another's output).

Both stay one plain LightGBM text model holding every tree, so prediction, TreeSHAP
(additive over trees) and the model store need nothing else. A continuation boosts from
the earlier booster's raw output on each row as ``init_score``; LightGBM already holds
that output for the rows the earlier booster was fitted on (its training scores), so only
the rows it never saw are predicted (:func:`fit_boosters` with ``keep_scores``;
``training.evaluator_output``).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import lightgbm as lgb

# the per-tree values a seed bag scales (leaf outputs and, for consistency, node values)
_SCALED_TREE_FIELDS = ("leaf_value=", "internal_value=")

# The text of each booster ``fit_boosters`` returns, which it parsed from that text and
# which is never trained further: a merge reads it instead of serializing the booster
# again (70 ms a rossmann-100 model, a merge reads two)
_FITTED_TEXT: weakref.WeakKeyDictionary[lgb.Booster, str] = weakref.WeakKeyDictionary()


def model_text(booster: lgb.Booster) -> str:
    """The booster as a LightGBM text model (all its trees)."""
    text = _FITTED_TEXT.get(booster)
    return booster.model_to_string() if text is None else text


def average_boosters(boosters: list[lgb.Booster]) -> lgb.Booster:
    """One LightGBM model whose output is the mean of the boosters' outputs (a seed
    bag): all their trees, each leaf value divided by their number. The boosters must
    share features and objective."""
    if len(boosters) == 1:
        return boosters[0]
    return _merged_trees(boosters, scale=1.0 / len(boosters))


def chain_boosters(boosters: list[lgb.Booster]) -> lgb.Booster:
    """One LightGBM model whose output is the sum of the boosters' outputs: each booster
    after the first was boosted from the raw output of the ones before it (its
    ``init_score``). Same constraints as :func:`average_boosters`."""
    if len(boosters) == 1:
        return boosters[0]
    return _merged_trees(boosters, scale=1.0)


def _merged_trees(boosters: list[lgb.Booster], *, scale: float) -> lgb.Booster:
    """All the boosters' trees in one text model, each leaf value times ``scale``."""
    import lightgbm as lgb

    head = tail = ""
    trees: list[str] = []
    for i, booster in enumerate(boosters):
        text = model_text(booster)
        start, end = text.index("\nTree="), text.index("\nend of trees")
        if i == 0:
            # the header without tree_sizes (LightGBM recomputes it when the merged model
            # is saved again); parameters and pandas categories from the first booster
            head = "\n".join(
                line for line in text[:start].split("\n") if not line.startswith("tree_sizes=")
            )
            tail = text[end:]
        for block in text[start:end].strip().split("\n\n"):
            lines = block.strip().split("\n")
            out = [f"Tree={len(trees)}"]
            for line in lines[1:]:
                if scale != 1.0 and line.startswith(_SCALED_TREE_FIELDS):
                    key, values = line.split("=", 1)
                    line = f"{key}=" + " ".join(repr(float(v) * scale) for v in values.split())
                out.append(line)
            trees.append("\n".join(out))
    return lgb.Booster(model_str=head + "\n\n" + "\n\n\n".join(trees) + "\n\n" + tail)


def fit_boosters(
    params: dict,
    train_set: lgb.Dataset,
    *,
    trees: int,
    seeds: int,
    keep_scores: bool = False,
) -> tuple[lgb.Booster, np.ndarray | None]:
    """``seeds`` boosters of ``trees`` trees on ``train_set`` (seeds ``params["seed"]``,
    +1, ...), averaged (:func:`average_boosters`). With ``keep_scores``, also their mean
    raw output on the training rows, init_score included (LightGBM's training scores:
    nothing is predicted); else None. No booster keeps the Dataset."""
    import lightgbm as lgb

    seed = int(params.get("seed", 0))
    boosters, scores = [], []
    for i in range(seeds):
        trained = lgb.train(
            {**params, "seed": seed + i},
            train_set,
            num_boost_round=trees,
            keep_training_booster=True,
        )
        if keep_scores:
            scores.append(training_scores(trained))
        # a copy without the training data (the next seed may rebuild the Dataset), as
        # lgb.train makes one unless asked to keep it; its text is kept for a merge
        text = trained.model_to_string()
        del trained
        booster = lgb.Booster(model_str=text)
        _FITTED_TEXT[booster] = text
        boosters.append(booster)
    return average_boosters(boosters), (np.mean(scores, axis=0) if keep_scores else None)


def training_scores(booster: lgb.Booster) -> np.ndarray:
    """A booster's output on its training rows as LightGBM keeps it during training
    (init_score included), read through ``eval_train``: the one public access to it."""
    captured: list[np.ndarray] = []

    def capture(preds: np.ndarray, _data: lgb.Dataset) -> tuple[str, float, bool]:
        captured.append(np.array(preds, dtype=np.float64))
        return "training_scores", 0.0, False

    booster.eval_train(feval=capture)
    return captured[0]
