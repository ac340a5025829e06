"""The headstart library: torch, numpy and scikit-learn only (never kedro or mlflow)."""
