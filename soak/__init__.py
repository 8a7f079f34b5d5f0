"""The fault soak (`make soak`, docs/soak.md)."""
