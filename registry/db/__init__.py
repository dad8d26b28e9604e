"""Database models and engine. Imports registry.core only."""
