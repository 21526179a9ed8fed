"""mlops_assets: demand-forecasting MLOps on Dagster software-defined assets."""

import os

# nannyml sends usage telemetry unless this is set before it is imported; the platform
# never phones home, so it is forced here, before any module can import nannyml.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
