"""Model-side helpers that do not import Dagster."""
