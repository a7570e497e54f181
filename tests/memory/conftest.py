"""The chat tests' accounts (creator, fan), for the memory tests that chat."""

from tests.chat.conftest import creator, fan

__all__ = ["creator", "fan"]
