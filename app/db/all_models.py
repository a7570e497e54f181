"""Import every domain's tables so that ``metadata`` holds the whole schema."""

from app.db import models  # noqa: F401
from app.db.base import metadata

__all__ = ["metadata"]
