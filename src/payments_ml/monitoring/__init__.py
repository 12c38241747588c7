"""Monitoring library: PSI, per-day data quality, drift and the alert log.

Importable without Kedro (the dashboard reads alerts with
``payments_ml.monitoring.alerts.active_alerts``); only ``datasets`` imports Kedro.
"""
