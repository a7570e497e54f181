"""The shared kernel: pagination, time and websocket helpers every domain uses. No domain logic, and no import
of any package of the app (``tests/test_layers.py`` checks it)."""
