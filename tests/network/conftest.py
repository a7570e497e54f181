"""The network's rollups are fed by real chats: the chat tests' served app, its creator and fan, with memory off
(its extractions are node requests of their own, which the recount of chat messages does not see)."""

from tests.chat.conftest import creator, fan, served, settings  # noqa: F401  (fixtures used by this folder's tests)
