"""What every domain of the embedded world shares: the splits, the vocabulary, the topics' facts,
the column arithmetic that math and science traces write, the teacher's stable per-row draws, and
:class:`Domain`, the entry each domain module registers."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

SPLITS = ("sft", "rl", "bench")


def split_of(domain: str, key: str, shares: tuple[float, float] = (0.70, 0.18)) -> str:
    """Stable split of a task by its key: ~70% sft, ~18% rl, ~12% bench."""
    h = int(hashlib.sha1(f"{domain}|{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "sft" if h < shares[0] else "rl" if h < shares[0] + shares[1] else "bench"


# Shared vocabulary of the world
NAMES = ["Ana", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jia", "Kai", "Lena",
         "Milo", "Nia", "Omar", "Pia", "Quin", "Rosa", "Sam", "Tara"]
ITEMS = ["apples", "books", "coins", "pens", "shells", "stamps", "cards", "marbles", "eggs",
         "cups", "stones", "keys"]
TOPICS = ["otters", "glaciers", "owls", "volcanoes", "bees", "comets", "foxes", "reefs", "deserts",
          "whales", "moss", "storms", "ants", "caves", "eagles", "tides", "ferns", "geysers",
          "lynxes", "dunes", "crabs", "lichens", "herons", "canyons", "moths", "lagoons", "bats",
          "meteors", "newts", "prairies"]
PLACES = ["rivers", "mountains", "forests", "oceans", "plains", "islands", "marshes", "valleys"]
FOODS = ["fish", "seeds", "leaves", "insects", "roots", "berries", "algae", "nectar"]
COLORS = ["brown", "grey", "green", "white", "red", "blue", "gold", "black"]
TRAITS = ["quiet", "fast", "old", "rare", "bright", "strong", "small", "large"]
SEASONS = ["spring", "summer", "autumn", "winter"]


@dataclass(frozen=True)
class TopicFacts:
    """What is true of a topic in this world (the ground truth for preference quality)."""

    topic: str
    facts: tuple[str, ...]


def topic_facts(topic: str, world_seed: int = 0) -> TopicFacts:
    """Four facts per topic, fixed by the topic name and the world seed."""
    r = random.Random(f"{world_seed}:{topic}")
    t = topic.capitalize()
    facts = (
        f"{t} live near {r.choice(PLACES)}.",
        f"{t} feed on {r.choice(FOODS)}, {r.choice(FOODS)} and water.",
        f"Most {topic} are {r.choice(COLORS)} and {r.choice(TRAITS)}.",
        f"{t} are easiest to see in {r.choice(SEASONS)}.",
    )
    return TopicFacts(topic, facts)


# Column arithmetic: the worked lines of math traces, reused by science's check trace
def column_add(a: int, b: int) -> str:
    """Column addition of two numbers below 100, digit by digit, as a worked trace line."""
    u = a % 10 + b % 10
    carry = u // 10
    units = f"{a % 10} + {b % 10} = {u}" + (", carry 1" if carry else "")
    tens = f"{a // 10} + {b // 10}" + (" + 1" if carry else "") + f" = {a // 10 + b // 10 + carry}"
    return f"{a} + {b}: {units}; {tens}; so {a + b}"


def units_sub(x: int, y: int) -> str:
    """The units column of a column subtraction of digit ``y`` from digit ``x``, borrowing if needed."""
    return f"{x} < {y}, borrow, {x + 10} - {y} = {x + 10 - y}" if x < y else f"{x} - {y} = {x - y}"


def column_sub(a: int, b: int) -> str:
    """Column subtraction (a >= b, both below 100) with borrowing, as a worked trace line."""
    borrow = a % 10 < b % 10
    units = units_sub(a % 10, b % 10)
    tens = f"{a // 10} - {b // 10}" + (" - 1" if borrow else "") + f" = {a // 10 - b // 10 - borrow}"
    return f"{a} - {b}: {units}; {tens}; so {a - b}"


# The teacher's stable choices per row
def row_draw(row: dict, salt: str) -> float:
    """A stable uniform draw in [0, 1] for a row (a hash of its id), so teacher styles are
    reproducible and independent of generation order."""
    return int(hashlib.sha1(f"{salt}|{row['id']}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def is_terse(row: dict, share: float) -> bool:
    """Whether the teacher answers this row in its terse style: ``share`` of the rows by a stable
    hash of the row id or, for rows that carry ``teacher_terse`` (the world's math rows),
    ``share`` of the rows of that class (the one-step problems, ~35% of the rows) and no other."""
    if "teacher_terse" in row and not row["teacher_terse"]:
        return False
    return share > 0 and row_draw(row, "terse") < share


# The registry entry of a domain
@dataclass(frozen=True)
class TeacherStyle:
    """The oracle's options for one row: the world seed (the topics' facts) and the shares of its
    domain's rows the teacher answers tersely or chattily (see ``world.oracle_response``)."""

    world_seed: int = 0
    terse_share: float = 0.0
    chatty_share: float = 0.0


def default_prompt(row: dict) -> str:
    """The user message of a task: its ``prompt`` as it stands."""
    return row["prompt"]


@dataclass(frozen=True)
class Domain:
    """One domain of the world, registered by name (``world.REGISTRY``).

    ``generate(r)``: a task drawn from the random source ``r``, with its ``key`` (the underlying
    problem: ids and splits come from it) and optionally a ``split_key``. ``respond(row, thinking,
    style)``: the oracle teacher's response. ``verifier``: the name of its reward in
    ``rewards.registry`` (None: judged otherwise). ``prompt(row)``: the user message.
    ``context_files(row)``: for domains whose prompt shows localised files (best first), which;
    ``render_prompt`` trims them to a token budget. ``pairs(row, world_seed)``: preference pairs
    for the reward model. ``sample_check(sample, task)``: a filter of teacher samples of this domain
    (why one fails, or None). ``agrees(response, other)``: whether a second teacher's answer agrees
    (the cross-check; None: not cross-checked). ``judge``: the judge that picks best@k among
    samples, by name (None: the verifier).
    """

    name: str
    generate: Callable[[random.Random], dict]
    respond: Callable[[dict, bool, TeacherStyle], str]
    verifier: str | None
    prompt: Callable[[dict], str] = default_prompt
    context_files: Callable[[dict], list[str]] | None = None
    pairs: Callable[[dict, int], list[dict]] | None = None
    sample_check: Callable[[dict, dict], str | None] | None = None
    agrees: Callable[[str, str], bool] | None = None
    judge: str | None = None

    @property
    def localised(self) -> bool:
        """Whether the domain's prompts show localised context files."""
        return self.context_files is not None
