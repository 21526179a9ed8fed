"""How the platform is deployed: Dagster instance plug-ins (the run launcher)."""
