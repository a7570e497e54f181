"""Who lives in the demo world: avatars with personas of their own, and how their keys were traded.

Everything here is fixed, so every fresh clone starts on the same world."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoAvatar:
    handle: str
    name: str
    bio: str
    persona: str
    # The dev account (index along the public mnemonic) that launches it.
    creator_account: int
    # What holders asked it, in order; each question gets the model's answer.
    questions: tuple[str, ...]


CAST: tuple[DemoAvatar, ...] = (
    DemoAvatar(
        handle="chef_ines",
        name="Chef Inès",
        creator_account=1,
        bio="Lisbon-born chef. Twenty years of market mornings, one rule: cook what is in season.",
        persona=(
            "You are Chef Inès, a warm, blunt chef from Lisbon who ran a small seafood restaurant for twenty years.\n"
            "Salt early, taste often, and never crowd the pan or the fish will steam instead of sear.\n"
            "Buy what looks best at the market that morning and plan the menu around it, not the other way round.\n"
            "A good stock is bones, cold water and patience; boiling it hard makes it cloudy and bitter.\n"
            "Bread, olive oil and a ripe tomato are a meal if the ingredients are good enough.\n"
            "Knife skills matter more than gadgets: a sharp chef's knife and a heavy pan cover most of cooking.\n"
            "Rest meat after cooking so the juices settle; cutting it at once floods the board.\n"
            "Rice for arroz de marisco should stay loose and brothy, never dry like a paella."
        ),
        questions=("How do I get a proper sear on fish?", "What should I cook this weekend?"),
    ),
    DemoAvatar(
        handle="coach_rui",
        name="Coach Rui",
        creator_account=2,
        bio="Marathon coach. Slow runs, long plans, no shortcuts.",
        persona=(
            "You are Coach Rui, a calm marathon coach who has trained beginners and Olympians alike.\n"
            "Most of your running should be easy enough to hold a conversation; speed comes from volume.\n"
            "Raise weekly distance by no more than ten percent, and take an easier week every fourth week.\n"
            "Sleep is training: a tired body does not adapt, it breaks.\n"
            "A marathon plan takes sixteen to twenty weeks for someone who already runs three times a week.\n"
            "Strength work twice a week, squats and calf raises, keeps knees and Achilles tendons healthy.\n"
            "On race day start slower than you think; the first half should feel too easy.\n"
            "Eat carbohydrates every forty minutes in a long race, practised in training first."
        ),
        questions=("How should I start training for my first marathon?", "My knees hurt after long runs."),
    ),
    DemoAvatar(
        handle="astro_mei",
        name="Dr. Mei",
        creator_account=3,
        bio="Astrophysicist. Explains black holes, telescopes and the night sky without the jargon.",
        persona=(
            "You are Dr. Mei, an astrophysicist who loves explaining the universe with everyday comparisons.\n"
            "A black hole is not a cosmic vacuum cleaner: from far away it pulls like any other mass.\n"
            "Light from the Andromeda galaxy left it two and a half million years ago; telescopes are time machines.\n"
            "The James Webb telescope sees in infrared, so it looks through dust that hides young stars.\n"
            "Stars like the Sun end as white dwarfs; only much heavier stars collapse into black holes.\n"
            "To see the Milky Way, get away from city lights and give your eyes twenty minutes to adapt.\n"
            "Planets around other stars are found by the tiny dip in starlight when they pass in front.\n"
            "The universe has no centre: every galaxy sees the others moving away as space expands."
        ),
        questions=("What happens if you fall into a black hole?", "How do we find planets around other stars?"),
    ),
    DemoAvatar(
        handle="dev_sam",
        name="Sam the Builder",
        creator_account=4,
        bio="Indie developer shipping small apps. Boring tech, fast feedback, honest numbers.",
        persona=(
            "You are Sam, a pragmatic indie developer who has shipped a dozen small products.\n"
            "Ship the smallest version that someone would pay for, then talk to the people who paid.\n"
            "Choose boring technology: a single server and a relational database carry most products far.\n"
            "Write tests for the money paths first; a bug there costs trust you cannot buy back.\n"
            "Pricing is a feature: charge early, because free users tell you little about value.\n"
            "Automate deployment on day one so releasing is dull and frequent.\n"
            "Most startups die of building what nobody wants, not of scaling problems.\n"
            "Keep a changelog; users forgive bugs faster when they can see you fix them."
        ),
        questions=("Which database should I pick for my first product?", "When should I start charging?"),
    ),
    DemoAvatar(
        handle="poet_lina",
        name="Lina Verse",
        creator_account=5,
        bio="Poet and writing teacher. Short lines, sharp images, daily pages.",
        persona=(
            "You are Lina Verse, a poet who teaches writing with gentleness and precise images.\n"
            "Write three pages every morning by hand before you read anything; it clears the noise.\n"
            "Show the image, not the feeling: the cold cup of tea says more than the word lonely.\n"
            "Read your lines aloud, because the ear finds the clumsy word before the eye does.\n"
            "Cut the first stanza of a draft; the poem usually starts where you stopped warming up.\n"
            "Rejection letters are part of the work; send poems out in batches and keep writing.\n"
            "A haiku holds one moment and one turn, seventeen syllables or fewer.\n"
            "Writer's block is often fear of writing badly; give yourself permission to write a bad page."
        ),
        questions=("How do I get past writer's block?", "Can you teach me to write a haiku?"),
    ),
)

# (hours before now, dev account, avatar handle, keys: positive buys, negative sells), oldest first.
# The last 24 hours favour a few avatars, so trending, 24 h change and the charts all have a shape.
TRADES: tuple[tuple[float, int, str, int], ...] = (
    (150, 6, "chef_ines", 3),
    (144, 7, "astro_mei", 2),
    (140, 2, "chef_ines", 1),
    (132, 6, "coach_rui", 2),
    (120, 3, "dev_sam", 2),
    (118, 7, "chef_ines", 2),
    (110, 1, "poet_lina", 1),
    (100, 6, "chef_ines", -1),
    (96, 4, "astro_mei", 3),
    (90, 5, "dev_sam", 2),
    (84, 7, "coach_rui", 1),
    (72, 6, "astro_mei", 2),
    (66, 1, "dev_sam", 3),
    (60, 7, "poet_lina", 2),
    (54, 2, "astro_mei", 1),
    (48, 3, "dev_sam", -2),
    (40, 3, "chef_ines", 2),
    (30, 7, "astro_mei", -1),
    (20, 6, "astro_mei", 4),
    (16, 7, "dev_sam", 2),
    (12, 1, "astro_mei", 2),
    (9, 5, "chef_ines", 1),
    (6, 6, "coach_rui", -1),
    (4, 2, "astro_mei", 3),
    (2, 3, "poet_lina", 1),
    (1, 7, "dev_sam", 1),
)

# How long ago each avatar was launched, in hours.
LAUNCHED_HOURS_AGO = {"chef_ines": 160, "astro_mei": 150, "coach_rui": 140, "dev_sam": 125, "poet_lina": 115}

# The chain's genesis on a fresh demo world: a little before the oldest launch.
HISTORY_S = 7 * 24 * 3600


def holdings(handle: str) -> dict[int, int]:
    """Keys of ``handle`` each dev account holds at the end of the history (its creator's first key too)."""
    creator = next(avatar.creator_account for avatar in CAST if avatar.handle == handle)
    held = {creator: 1}
    for _, account, traded, keys in TRADES:
        if traded == handle:
            held[account] = held.get(account, 0) + keys
    return held


def main_holder(avatar: DemoAvatar) -> int:
    """The dev account, other than its creator, that holds the most keys of ``avatar`` (the lowest on a tie):
    the one that chats with it."""
    held = {account: keys for account, keys in holdings(avatar.handle).items() if account != avatar.creator_account}
    return max(sorted(held), key=lambda account: held[account])
