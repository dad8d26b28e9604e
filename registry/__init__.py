"""Reliquary: a content-addressed registry for ML models and container images."""
