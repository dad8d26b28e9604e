"""The OCI distribution API (``/v2``): images pushed and pulled by standard clients."""
