"""Process-wide guards that keep one request from crashing or stalling a process, shared by the
backend (:func:`app.main.create_app`) and the proxy node (:func:`app.proxy.app.create_proxy_app`).

- The recursion limit: C decoders (msgspec, ``json``) guard their depth with Python's recursion
  limit. py_ecc, which the embedded EVM imports, raises it to 100,000 when first imported; then
  ~50,000 levels of nested JSON overflow the C stack and the process dies with SIGSEGV instead
  of raising :class:`RecursionError`. :func:`keep_recursion_limit_sane` puts it back.
- JSON bodies: :class:`GuardedRequest` answers a body that is not UTF-8 or nests too deeply with
  a 400 naming the body, rather than a decoder's exception.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from litestar import Request

from app.validation import BadInput

# Python's own default: deep enough for the app, shallow enough that no C decoder can
# recurse past a thread's stack before it raises RecursionError.
SANE_RECURSION_LIMIT = 1_000

TOO_DEEP = "nests too deeply (at most a few hundred levels of arrays and objects)"


def keep_recursion_limit_sane() -> None:
    """Import what raises the recursion limit (so it cannot raise it later, at its first use),
    then lower the limit again. Both app factories call this."""
    with contextlib.suppress(ImportError):
        import py_ecc  # noqa: F401  (sets the limit to 100,000 as it is first imported)
    if sys.getrecursionlimit() > SANE_RECURSION_LIMIT:
        sys.setrecursionlimit(SANE_RECURSION_LIMIT)


class GuardedRequest(Request[Any, Any, Any]):
    """Litestar's request, whose JSON body is first checked to be UTF-8 and not too deep, so that
    every route that reads JSON (``data`` parameters and ``request.json()`` alike) answers
    ``400 invalid_request`` naming the body."""

    async def json(self) -> Any:
        body = await self.body()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadInput("body", f"not UTF-8 (byte {error.start})") from None
        try:
            return await super().json()
        except RecursionError:
            raise BadInput("body", TOO_DEEP) from None
