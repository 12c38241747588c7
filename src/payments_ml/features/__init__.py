"""Feature logic shared by the features pipeline and the scorer (importable without Kedro)."""
