"""HTTP endpoints of reviews: read them with what verifies them, write, edit, delete, answer, hide."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import provide_current_address
from app.avatars.service import get_avatar
from app.chain.client import Chain
from app.config import Settings
from app.errors import SESSION_WRITE, error_responses
from app.lib.pagination import MAX_ROW_ID, check_limit
from app.reviews import service
from app.reviews.models import Review
from app.reviews.schemas import AnswerIn, HideIn, ReviewIn, ReviewOut, ReviewsPage
from app.reviews.signing import DOMAIN_NAME, DOMAIN_VERSION, REVIEW_TYPES
from app.validation import AvatarIdParam, parse_avatar_id

Cursor = Annotated[str | None, Parameter(description="next_cursor of the previous page", max_length=512)]
Limit = Annotated[int, Parameter(description="items per page, 1–100", schema_extra={"minimum": 1, "maximum": 100})]
ReviewId = Annotated[int, Parameter(description="the review's id", ge=1, le=MAX_ROW_ID)]
# Review writes are rate limited per client address (Litestar's RateLimitMiddleware, see rate_limit_config).
WRITE = {"review_write": True}


def rate_limit_config(settings: Settings) -> RateLimitConfig:
    """Litestar's rate limit, on the routes marked ``review_write`` only."""

    async def is_review_write(request: Request[Any, Any, Any]) -> bool:
        return bool(request.route_handler.opt.get("review_write"))

    return RateLimitConfig(
        rate_limit=("minute", settings.review_writes_per_minute),
        check_throttle_handler=is_review_write,
        store="review_rate_limit",
    )


def signing(chain: Chain) -> service.Signing:
    return service.Signing(chain.chain_id, chain.addresses.twin_keys)


async def shown(session: AsyncSession, chain: Chain, review: Review) -> ReviewOut:
    await session.flush()  # a new review gets its id
    (out,) = await service.described(session, review.avatar_id, [review], signing(chain))
    return out


class ReviewController(Controller):
    path = "/api/avatars/{avatar_id:str}/reviews"
    tags = ["reviews"]

    @get(
        "/",
        summary="An avatar's reviews, newest first, with its rating and what verifies each review",
        responses=error_responses(400, 404, 503),
    )
    async def list_reviews(
        self,
        chain: NamedDependency[Chain],
        settings: NamedDependency[Settings],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        cursor: Cursor = None,
        limit: Limit = 20,
    ) -> ReviewsPage:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        return await service.reviews_page(
            db_session,
            avatar_id=avatar.id,
            signing=signing(chain),
            prior=service.Prior.of(settings),
            cursor=cursor,
            limit=check_limit(limit),
        )

    @post(
        "/",
        summary="Review the avatar (a holder who chatted with it): signed EIP-712; again to edit",
        dependencies={"address": Provide(provide_current_address)},
        opt=WRITE,
        status_code=201,
        responses=error_responses(400, 401, 403, 404, 409, 429, 503, *SESSION_WRITE),
    )
    async def submit(
        self,
        chain: NamedDependency[Chain],
        settings: NamedDependency[Settings],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        address: NamedDependency[str],
        data: JSONBody[ReviewIn],
    ) -> ReviewOut:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        review = await service.submit(
            db_session,
            avatar=avatar,
            author=address,
            data=data,
            signing=signing(chain),
            window_s=settings.review_signature_window_s,
        )
        return await shown(db_session, chain, review)

    @delete(
        "/{review_id:int}",
        summary="Delete your review",
        opt=WRITE,
        dependencies={"address": Provide(provide_current_address)},
        responses=error_responses(400, 401, 403, 404, 429, 503, *SESSION_WRITE),
    )
    async def remove(
        self,
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        review_id: ReviewId,
        address: NamedDependency[str],
    ) -> None:
        await service.delete(db_session, avatar_id=parse_avatar_id(avatar_id), review_id=review_id, author=address)

    @post(
        "/{review_id:int}/answer",
        summary="Answer a review of your avatar (once)",
        opt=WRITE,
        dependencies={"address": Provide(provide_current_address)},
        status_code=201,
        responses=error_responses(400, 401, 403, 404, 409, 429, 503, *SESSION_WRITE),
    )
    async def answer(
        self,
        chain: NamedDependency[Chain],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        review_id: ReviewId,
        address: NamedDependency[str],
        data: JSONBody[AnswerIn],
    ) -> ReviewOut:
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        review = await service.answer(db_session, avatar=avatar, review_id=review_id, creator=address, text=data.text)
        return await shown(db_session, chain, review)

    @post(
        "/{review_id:int}/hide",
        summary="Hide a review for abuse (the protocol owner only); it stays listed",
        opt=WRITE,
        dependencies={"address": Provide(provide_current_address)},
        status_code=201,
        responses=error_responses(400, 401, 403, 404, 429, 503, *SESSION_WRITE),
    )
    async def hide(
        self,
        chain: NamedDependency[Chain],
        db_session: NamedDependency[AsyncSession],
        avatar_id: AvatarIdParam,
        review_id: ReviewId,
        address: NamedDependency[str],
        data: JSONBody[HideIn],
    ) -> ReviewOut:
        owner = await chain.twin_keys.functions.owner().call()  # the protocol owner is TwinKeys' owner
        review = await service.hide(
            db_session,
            avatar_id=parse_avatar_id(avatar_id),
            review_id=review_id,
            by=address,
            protocol_owner=owner,
            reason=data.reason,
        )
        return await shown(db_session, chain, review)


class ReviewDomainController(Controller):
    tags = ["reviews"]

    @get("/api/reviews/eip712", summary="The EIP-712 domain and types reviews are signed with")
    async def eip712(self, chain: NamedDependency[Chain]) -> dict[str, Any]:
        return {
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": chain.chain_id,
                "verifyingContract": chain.addresses.twin_keys,
            },
            "types": REVIEW_TYPES,
            "primaryType": "Review",
            "message": "{avatarId: bytes16, rating: 1–5, textHash: keccak256(utf-8 text), time: Unix seconds}",
        }
