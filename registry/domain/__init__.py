"""Bounded contexts: in each, controllers -> deps -> services -> repositories -> schemas
(STYLE.md); ``lint-imports`` checks the layers and the rules between contexts."""
