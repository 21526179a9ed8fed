import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.models.boosting import (
    average_boosters,
    chain_boosters,
    fit_boosters,
    model_text,
    training_scores,
)

PARAMS = {"verbose": -1, "num_leaves": 8, "bagging_fraction": 0.7, "bagging_freq": 1}


@pytest.fixture
def rows():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {"a": rng.random(600), "b": rng.random(600), "c": rng.choice(list("xyz"), 600)}
    ).astype({"c": "category"})
    y = 3 * X["a"] + (X["c"] == "y") * 1.5 + rng.random(600)
    return X, y


def test_averaged_boosters_are_one_text_model_predicting_their_mean(rows):
    X, y = rows
    data = lgb.Dataset(X, y, categorical_feature=["c"], free_raw_data=False)
    boosters = [lgb.train({**PARAMS, "seed": s}, data, num_boost_round=20) for s in range(3)]
    mean = np.mean([b.predict(X) for b in boosters], axis=0)
    assert np.ptp(boosters[0].predict(X) - boosters[1].predict(X)) > 0  # seeds differ
    bag = average_boosters(boosters)
    assert bag.num_trees() == 60
    np.testing.assert_allclose(bag.predict(X), mean, rtol=1e-12, atol=1e-12)
    # a plain text model again (as the registry stores it), explained additively
    again = lgb.Booster(model_str=bag.model_to_string())
    np.testing.assert_allclose(again.predict(X), mean, rtol=1e-12, atol=1e-12)
    contrib = again.predict(X, pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), mean, rtol=1e-9, atol=1e-9)
    assert average_boosters(boosters[:1]) is boosters[0]


def test_a_continuation_boosted_from_a_boosters_output_chains_into_one_model(rows):
    X, y = rows
    first = lgb.train(PARAMS, lgb.Dataset(X[:400], y[:400]), num_boost_round=15)
    # more rows, boosted from the first booster's output on them
    start = first.predict(X, raw_score=True)
    more = lgb.train(PARAMS, lgb.Dataset(X, y, init_score=start), num_boost_round=5)
    chained = lgb.Booster(model_str=chain_boosters([first, more]).model_to_string())
    assert chained.num_trees() == 20
    np.testing.assert_allclose(chained.predict(X), start + more.predict(X), rtol=1e-9, atol=1e-9)
    contrib = chained.predict(X, pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), chained.predict(X), rtol=1e-9, atol=1e-9)
    # the continuation learned from the rows the first booster never saw
    late = slice(400, None)
    assert np.abs(chained.predict(X[late]) - y[late]).mean() < np.abs(start[late] - y[late]).mean()
    assert chain_boosters([first]) is first


@pytest.mark.parametrize("seeds", [1, 3])
def test_training_scores_are_the_fitted_boosters_raw_output_with_their_init_score(rows, seeds):
    X, y = rows
    offset = np.linspace(-1, 1, len(X))
    data = lgb.Dataset(X, y, init_score=offset, free_raw_data=seeds == 1)
    booster, scores = fit_boosters(PARAMS, data, trees=12, seeds=seeds, keep_scores=True)
    assert booster.num_trees() == 12 * seeds
    np.testing.assert_allclose(scores, booster.predict(X, raw_score=True) + offset, atol=1e-9)
    # not kept: nothing is read back, and the booster does not hold the Dataset
    again, none = fit_boosters(PARAMS, data, trees=12, seeds=seeds)
    assert none is None
    np.testing.assert_allclose(again.predict(X), booster.predict(X), atol=1e-12)


def test_training_scores_of_a_transformed_objective_are_not_raw(rows):
    """LightGBM reports poisson's training output transformed: training checks scores
    against a raw prediction before boosting from them (``evaluator_output``)."""
    X, y = rows
    booster = lgb.train(
        {**PARAMS, "objective": "poisson"},
        lgb.Dataset(X, y),
        num_boost_round=5,
        keep_training_booster=True,
    )
    scores = training_scores(booster)
    assert not np.allclose(scores, booster.predict(X, raw_score=True), atol=1e-6)
    np.testing.assert_allclose(scores, booster.predict(X), rtol=1e-9)


def test_a_merge_reads_the_text_a_fitted_booster_was_made_from(rows):
    """fit_boosters keeps each booster's text for a merge: it must be that booster's model,
    and a merge of fitted boosters the same model as one of freshly serialized copies."""
    X, y = rows
    data = lgb.Dataset(X, y, categorical_feature=["c"], free_raw_data=False)
    first, _ = fit_boosters(PARAMS, data, trees=10, seeds=1)
    more, _ = fit_boosters({**PARAMS, "seed": 7}, data, trees=4, seeds=1)
    assert model_text(first) == first.model_to_string()
    copies = [lgb.Booster(model_str=b.model_to_string()) for b in (first, more)]
    assert model_text(copies[0]) == model_text(first)  # not kept: serialized
    merged = chain_boosters([first, more]).model_to_string()
    assert merged == chain_boosters(copies).model_to_string()
    bag = average_boosters([first, more]).model_to_string()
    assert bag == average_boosters(copies).model_to_string()
