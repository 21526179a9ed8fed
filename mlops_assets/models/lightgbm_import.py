"""Import LightGBM without its scikit-learn and matplotlib integrations.

``import lightgbm`` also imports scikit-learn (for ``LGBMRegressor`` and friends) and
matplotlib (for ``lightgbm.plot_*``) when they are installed, and they are (nannyml needs
scikit-learn): 3.3 s instead of 1.4 s on this machine, paid again by every run process.
Training and scoring use only the core API (``Dataset``, ``train``, ``Booster``), so a
process that does nothing else imports LightGBM with those two packages hidden.

The price: in that process ``lightgbm.LGBMRegressor`` cannot be used (LightGBM decided
at import time that scikit-learn is missing), and nannyml's performance estimation and
domain classifier use it. A process that ran a training-only run and then runs monitoring
(the demo's in-process driver, ``materialize`` in tests) therefore imports LightGBM again,
fully, before nannyml is first imported: :func:`ensure_lightgbm_sklearn_api`, called by
``monitoring.import_nannyml``: LightGBM's scikit-learn layer is executed again, its core
(``Dataset``, ``Booster``, ``train``) stays the same objects. scikit-learn and matplotlib
themselves stay importable after the core import.
"""

from __future__ import annotations

import sys
from types import ModuleType

_INTEGRATIONS = ("sklearn", "matplotlib")


def import_lightgbm_core() -> ModuleType:
    """LightGBM, imported without its scikit-learn and matplotlib integrations unless it
    or one of them is imported already (then this is a plain ``import lightgbm``)."""
    if "lightgbm" in sys.modules or any(m in sys.modules for m in _INTEGRATIONS):
        import lightgbm

        return lightgbm
    for name in _INTEGRATIONS:
        sys.modules[name] = None  # type: ignore[assignment]  # "import sklearn" raises
    try:
        import lightgbm
    finally:
        for name in _INTEGRATIONS:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return lightgbm


def lightgbm_has_sklearn_api() -> bool:
    from lightgbm.compat import SKLEARN_INSTALLED

    return bool(SKLEARN_INSTALLED)


def ensure_lightgbm_sklearn_api(why: str) -> None:
    """Re-import LightGBM with its scikit-learn API if this process imported it without.

    Must run before nannyml is imported (nannyml binds ``LGBMRegressor`` and
    ``LGBMClassifier`` at import time); if nannyml already holds the crippled classes this
    fails with the reason instead of letting nannyml fail later without one."""
    if "lightgbm" not in sys.modules or lightgbm_has_sklearn_api():
        return
    if "nannyml" in sys.modules:
        raise RuntimeError(
            f"{why} needs LightGBM's scikit-learn API, but this process imported LightGBM "
            "without it (import_lightgbm_core) and nannyml was imported before it could be "
            "re-imported: import nannyml through monitoring.import_nannyml"
        )
    # only the modules that decided "no scikit-learn" are executed again, and the package
    # gets their classes: Dataset, Booster and train stay the same objects, so a module
    # that bound ``lightgbm`` before this and one that binds it after build and train the
    # same Dataset (a fresh import of the whole package made LightGBM refuse one module's
    # Dataset in the other's train)
    import importlib

    import lightgbm

    importlib.reload(lightgbm.compat)
    if "lightgbm.sklearn" in sys.modules:
        sklearn_api = importlib.reload(sys.modules["lightgbm.sklearn"])
    else:
        sklearn_api = importlib.import_module("lightgbm.sklearn")
    for name in ("LGBMModel", "LGBMRegressor", "LGBMClassifier", "LGBMRanker"):
        setattr(lightgbm, name, getattr(sklearn_api, name))
