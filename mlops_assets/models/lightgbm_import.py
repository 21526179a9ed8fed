"""Import LightGBM without its scikit-learn and matplotlib integrations.

``import lightgbm`` also imports scikit-learn (for ``LGBMRegressor`` and friends) and
matplotlib (for ``lightgbm.plot_*``) when they are installed, and they are (nannyml needs
scikit-learn): 3.3 s instead of 1.4 s on this machine, paid again by every run process.
Training and scoring use only the core API (``Dataset``, ``train``, ``Booster``), so a
process that does nothing else imports LightGBM with those two packages hidden.

The price: in that process ``lightgbm.LGBMRegressor`` cannot be used (LightGBM decided
at import time that scikit-learn is missing), and nannyml's performance estimation and
domain classifier use it. So only a process that will not run them may call
:func:`import_lightgbm_core` (see ``defs.models.assets.load_lightgbm_for_run``);
:func:`require_lightgbm_sklearn_api` turns a mistake into a clear error. scikit-learn and
matplotlib themselves stay importable afterwards.
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


def require_lightgbm_sklearn_api(why: str) -> None:
    """Fail with the reason when this process imported LightGBM without scikit-learn."""
    if not lightgbm_has_sklearn_api():
        raise RuntimeError(
            f"{why} needs LightGBM's scikit-learn API, but this process imported LightGBM "
            "without it (import_lightgbm_core, for training-only runs): run it in a run "
            "that selects a monitoring asset"
        )
