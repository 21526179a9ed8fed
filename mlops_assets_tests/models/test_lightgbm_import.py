"""LightGBM imported without scikit-learn and matplotlib for training-only processes, and
the full import again, before nannyml, when the same process monitors afterwards."""

import subprocess
import sys


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_core_import_trains_and_predicts_without_loading_sklearn_or_matplotlib() -> None:
    out = _python(
        "import sys, numpy as np\n"
        "from mlops_assets.models.lightgbm_import import import_lightgbm_core, "
        "lightgbm_has_sklearn_api\n"
        "lgb = import_lightgbm_core()\n"
        "x = np.arange(200, dtype=float).reshape(-1, 1); y = 2 * x[:, 0]\n"
        "b = lgb.train({'verbose': -1, 'min_data_in_leaf': 5}, lgb.Dataset(x, y), 20)\n"
        "print(round(float(b.predict(x[:1])[0])), 'sklearn' in sys.modules, "
        "'matplotlib' in sys.modules, lightgbm_has_sklearn_api())\n"
        # both stay importable afterwards (not left blocked in sys.modules)
        "import sklearn.base, matplotlib\n"
        "print('importable')\n"
    )
    first, second = out.splitlines()
    prediction, sklearn_loaded, matplotlib_loaded, has_api = first.split()
    assert int(prediction) < 60  # learned the line's low end, not a constant
    assert (sklearn_loaded, matplotlib_loaded, has_api) == ("False", "False", "False")
    assert second == "importable"


def test_a_process_that_has_sklearn_gets_the_full_lightgbm() -> None:
    out = _python(
        "import sklearn.base\n"
        "from mlops_assets.models.lightgbm_import import import_lightgbm_core, "
        "lightgbm_has_sklearn_api\n"
        "lgb = import_lightgbm_core(); lgb.LGBMRegressor(n_estimators=2)\n"
        "print(lightgbm_has_sklearn_api())\n"
    )
    assert out == "True"


def test_monitoring_after_a_core_import_in_the_same_process_gets_the_full_lightgbm() -> None:
    """The demo's in-process driver runs train_job (core import) and then refresh_job in
    one process: nannyml's DLE must still fit its LightGBM error model there."""
    out = _python(
        "import numpy as np, pandas as pd\n"
        "from mlops_assets.models.lightgbm_import import import_lightgbm_core\n"
        "core = import_lightgbm_core()\n"
        "x = np.arange(200, dtype=float).reshape(-1, 1)\n"
        "params = {'verbose': -1, 'min_data_in_leaf': 5}\n"
        "booster = core.train(params, core.Dataset(x, 2 * x[:, 0]), 20)\n"
        "from mlops_assets.monitoring import import_nannyml\n"
        "nml = import_nannyml()\n"
        "from nannyml.performance_estimation.direct_loss_estimation.metrics import "
        "LGBMRegressor\n"
        "frame = pd.DataFrame({'x': x[:, 0]})  # nannyml fits on frames\n"
        "LGBMRegressor(n_estimators=2, verbose=-1).fit(frame, frame['x'])\n"
        "import lightgbm\n"
        "print(lightgbm.compat.SKLEARN_INSTALLED, lightgbm.LGBMRegressor is LGBMRegressor, "
        "round(float(booster.predict(x[:1])[0])) < 60)\n"
        # training goes on with Datasets made through either binding of the package: a
        # test process or the demo's driver trains again after monitoring
        "again = lightgbm.train(params, core.Dataset(x, 2 * x[:, 0]), 5)\n"
        "again = core.train(params, lightgbm.Dataset(x, 2 * x[:, 0]), 5)\n"
        "print(lightgbm.Dataset is core.Dataset, lightgbm.train is core.train)\n"
    )
    assert out.splitlines()[-2:] == ["True True True", "True True"]


def test_nannyml_imported_before_the_full_lightgbm_fails_with_the_reason() -> None:
    code = (
        "import sys\n"
        "from mlops_assets.models.lightgbm_import import import_lightgbm_core, "
        "ensure_lightgbm_sklearn_api\n"
        "import_lightgbm_core()\n"
        "sys.modules['nannyml'] = object()  # as if imported around import_nannyml\n"
        'ensure_lightgbm_sklearn_api("nannyml")\n'
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "nannyml was imported before it could be re-imported" in out.stderr
