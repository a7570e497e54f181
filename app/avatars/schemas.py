"""What clients send and receive about avatars. Constraints here become 400s naming the field."""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from app.proxy.protocol import VerificationLevel

Handle = Annotated[str, Meta(pattern=r"^[a-z0-9_]{3,32}$", description="3–32 of a-z, 0-9 and _")]
Name = Annotated[str, Meta(min_length=1, max_length=64)]
Bio = Annotated[str, Meta(max_length=1000)]
Persona = Annotated[str, Meta(min_length=1, max_length=8000)]
ModelName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._:/-]{1,128}$")]
ImageUrl = Annotated[str, Meta(pattern=r"^(https?://\S{1,490})?$", description="http(s) URL or empty")]


class AvatarCreate(Struct, forbid_unknown_fields=True):
    name: Name
    handle: Handle
    persona: Persona
    model: ModelName
    bio: Bio = ""
    verification_level: VerificationLevel = VerificationLevel.signature
    image_url: ImageUrl = ""


class AvatarUpdate(Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    bio: Bio | UnsetType = UNSET
    persona: Persona | UnsetType = UNSET
    model: ModelName | UnsetType = UNSET
    verification_level: VerificationLevel | UnsetType = UNSET
    image_url: ImageUrl | UnsetType = UNSET


class AvatarMetadata(Struct):
    """The public document the on-chain metadata URI points to (never the persona)."""

    id: str
    name: str
    handle: str
    bio: str
    image: str
    model: str
    verification_level: str
    creator: str


class AvatarLaunched(Struct):
    """Returned on launch: what the creator's wallet sends to TwinKeys to create it on-chain."""

    id: str
    handle: str
    metadata_uri: str
    creator: str
    listed: bool
    persona: str
    name: str
    model: str
    verification_level: str
