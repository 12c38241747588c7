"""The Ray Serve fraud scorer (importable without Kedro)."""
