"""Card facts shared by the apps that reason about cards without seeing one (connectors'
supported brands, routing rules); the vault detects them."""

CARD_BRANDS = ("visa", "mastercard", "amex", "discover", "jcb", "diners", "unionpay", "unknown")
