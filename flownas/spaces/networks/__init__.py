"""torch builders of the spaces' networks (imported only when a model is built)."""
