"""The web UI: page controllers that render ``frontend/templates`` and serve ``frontend/static``."""
