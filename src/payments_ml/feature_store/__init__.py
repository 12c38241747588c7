"""Feast definitions as code and the project's access to the feature store.

Importing Feast takes seconds; only code that talks to the store imports this package.
"""
