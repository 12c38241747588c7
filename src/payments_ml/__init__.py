"""payments-ml: card-payment fraud detection from laptop to Ray cluster."""

__version__ = "0.1.0"
