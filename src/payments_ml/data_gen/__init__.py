"""Synthetic payments: customers, cards, merchants and their days of transactions."""
