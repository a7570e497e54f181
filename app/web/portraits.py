"""Portraits drawn here, not fetched: every avatar without a picture of its own gets an SVG face
derived from its id, so the marketplace has pictures with no outside host and no upload."""

from __future__ import annotations

import hashlib
from html import escape

# (skin, hair) pairs and backgrounds, chosen to read well in light and dark themes alike.
SKINS = ("#f1c7a5", "#e0a981", "#c68642", "#8d5524", "#f6d7c3", "#a86b4a")
HAIRS = ("#2b1b12", "#5a3a22", "#a0522d", "#d8b26e", "#1f1f1f", "#7b7b7b", "#b5432f")
BACKGROUNDS = (
    ("#6366f1", "#a5b4fc"),
    ("#0ea5e9", "#7dd3fc"),
    ("#10b981", "#6ee7b7"),
    ("#f59e0b", "#fcd34d"),
    ("#ec4899", "#f9a8d4"),
    ("#8b5cf6", "#c4b5fd"),
    ("#ef4444", "#fca5a5"),
    ("#14b8a6", "#5eead4"),
)
SHIRTS = ("#1e293b", "#334155", "#7c2d12", "#14532d", "#1e3a8a", "#581c87", "#f8fafc")
HAIR_SHAPES = (
    "M26 44c0-18 10-28 24-28s24 10 24 28c-4-8-10-12-24-12s-20 4-24 12z",  # short
    "M22 58c-2-26 10-42 28-42s30 16 28 42c-2-10-4-18-6-22-6 4-16 6-22 6s-16-2-22-6c-2 4-4 12-6 22z",  # long
    "M28 40c2-16 12-24 22-24s20 8 22 24c-6-4-10-10-22-10s-16 6-22 10z",  # cropped
    "M24 48c-4-20 8-34 26-34s30 14 26 34l-6-14c-8 2-30 2-40 0z",  # curly crown
)


def portrait_svg(seed: str, label: str) -> str:
    """A 100×100 SVG face for ``seed`` (an avatar id), titled ``label``; the same seed, the same face."""
    digest = hashlib.sha256(seed.encode()).digest()
    skin, hair, shirt = SKINS[digest[0] % len(SKINS)], HAIRS[digest[1] % len(HAIRS)], SHIRTS[digest[2] % len(SHIRTS)]
    top, bottom = BACKGROUNDS[digest[3] % len(BACKGROUNDS)]
    hair_shape = HAIR_SHAPES[digest[4] % len(HAIR_SHAPES)]
    eye_y, smile = 46 + digest[5] % 4, 4 + digest[6] % 5
    glasses = digest[7] % 4 == 0
    gradient = f"g{digest.hex()[:8]}"
    return f"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100" role="img" aria-label="{escape(label)}">
<title>{escape(label)}</title>
<defs><linearGradient id="{gradient}" x1="0" y1="0" x2="0" y2="1">
<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/></linearGradient></defs>
<rect width="100" height="100" fill="url(#{gradient})"/>
<path d="M18 100c2-18 16-26 32-26s30 8 32 26z" fill="{shirt}"/>
<rect x="44" y="62" width="12" height="14" rx="5" fill="{skin}"/>
<ellipse cx="50" cy="48" rx="20" ry="23" fill="{skin}"/>
<path d="{hair_shape}" fill="{hair}"/>
<circle cx="42" cy="{eye_y}" r="2.6" fill="#1f1f1f"/><circle cx="58" cy="{eye_y}" r="2.6" fill="#1f1f1f"/>
{_glasses(eye_y) if glasses else ""}
<path d="M43 {eye_y + 12}q7 {smile} 14 0" fill="none" stroke="#7a2e2e" stroke-width="2" stroke-linecap="round"/>
</svg>"""


def _glasses(eye_y: int) -> str:
    return (
        f'<g fill="none" stroke="#1f1f1f" stroke-width="1.6"><circle cx="42" cy="{eye_y}" r="6"/>'
        f'<circle cx="58" cy="{eye_y}" r="6"/><path d="M48 {eye_y}h4"/></g>'
    )


def portrait_url(avatar_id: str, image_url: str) -> str:
    """The avatar's own picture, else its drawn portrait (:func:`portrait_svg`)."""
    return image_url or f"/avatars/{avatar_id}/portrait.svg"
