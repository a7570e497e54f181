"""Import every domain's tables so that ``metadata`` holds the whole schema. It lives above the domains
(not in ``app/db``, which they all import) so that importing it closes no package cycle."""

from app.auth import models as auth_models
from app.avatars import models as avatar_models
from app.chain import models as chain_models
from app.chat import models as chat_models
from app.db import models as shared_models
from app.db.base import metadata
from app.market import models as market_models
from app.memory import models as memory_models
from app.network import models as network_models
from app.reviews import models as review_models

DOMAIN_MODELS = (
    shared_models,
    auth_models,
    avatar_models,
    chain_models,
    market_models,
    chat_models,
    network_models,
    review_models,
    memory_models,
)

__all__ = ["DOMAIN_MODELS", "metadata"]
