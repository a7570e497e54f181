"""The network's rollups are fed by real chats: the chat tests' served app, its creator and fan."""

from tests.chat.conftest import creator, fan, served  # noqa: F401  (fixtures used by this folder's tests)
