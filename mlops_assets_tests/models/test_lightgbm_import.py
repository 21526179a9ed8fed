"""LightGBM imported without scikit-learn and matplotlib for training-only processes, and
a clear error where nannyml would need the scikit-learn API it then lacks."""

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


def test_nannyml_estimation_in_a_core_only_process_fails_with_the_reason() -> None:
    code = (
        "from mlops_assets.models.lightgbm_import import import_lightgbm_core\n"
        "import_lightgbm_core()\n"
        "from mlops_assets.models.lightgbm_import import require_lightgbm_sklearn_api\n"
        'require_lightgbm_sklearn_api("nannyml\'s DLE performance estimate")\n'
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "nannyml's DLE performance estimate needs LightGBM's scikit-learn API" in out.stderr
