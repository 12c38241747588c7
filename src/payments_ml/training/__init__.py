"""Model code shared by the training pipeline and the scorer (importable without Kedro)."""
