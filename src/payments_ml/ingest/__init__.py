"""Bring your own data: a source file mapped onto the transaction contract."""
