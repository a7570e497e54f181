"""Chat: the websocket chat with an avatar, its history and memory, and the admission queue in front of the nodes."""
