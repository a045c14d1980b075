"""The KnowLedger data schema, declared once.

Five tables describe a knowledge platform and its finance/insurance partner: pseudonymous ``users``,
knowledge ``items`` (courses, e-books, audio lectures), course-side ``interactions``, partner
``products`` and product ``conversions``. Every column's type, whether it is required, and its
constraints live in :data:`SCHEMA`; the loader validates against it, the demo generator produces data
that satisfies it, and ``docs/data-schema.md`` embeds :func:`render_markdown` so the documentation cannot
drift from the code.

Privacy is part of the schema: user ids must look like pseudonyms (no ``@``, no spaces, bounded length)
and the users table accepts only coarse attributes, so personal data is rejected at the door rather than
discovered later inside a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["str", "int", "float", "timestamp"]

#: Pseudonymous identifiers: letters, digits and ``_ . : -``, 1-64 characters, starting alphanumerically.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}"
ID_HINT = "an id of letters, digits and _ . : - (at most 64 characters, no spaces or @)"

#: Coarse region labels: words, spaces and hyphens only, short (no street addresses or postcodes).
REGION_PATTERN = r"[A-Za-z][A-Za-z \-]{0,39}"
REGION_HINT = "a coarse region name (letters, spaces, hyphens; at most 40 characters)"

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
LIFE_STAGES = ("student", "young_professional", "family", "pre_retirement", "retired")
ITEM_KINDS = ("course", "ebook", "audio")
ITEM_LEVELS = ("beginner", "intermediate", "expert", "all_levels")
EVENTS = ("view", "purchase", "completion", "rating")
PRODUCT_KINDS = (
    "wealth",
    "health",
    "life",
    "property",
    "accident",
    "pension",
    "savings",
    "annuity",
    "travel",
    "auto",
)

#: Earliest and latest accepted timestamps (epoch seconds): catches milliseconds passed as seconds.
MIN_EPOCH_S = 0.0
MAX_EPOCH_S = 4_102_444_800.0  # 2100-01-01T00:00:00Z


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its type, whether it must be present and non-empty, and its constraints.

    ``required=False`` means the column may be missing from the file altogether and its cells may be
    empty. ``references=(table, column)`` is a foreign key; ``unique`` marks a primary key.
    """

    name: str
    dtype: ColumnType
    required: bool = True
    description: str = ""
    choices: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    unique: bool = False
    references: tuple[str, str] | None = None
    pattern: str | None = None
    pattern_hint: str = ""

    def constraint_text(self) -> str:
        """Human-readable constraints, used in the generated documentation."""
        parts: list[str] = []
        if self.unique:
            parts.append("unique")
        if self.choices is not None:
            parts.append("one of " + ", ".join(f"`{c}`" for c in self.choices))
        if self.min_value is not None and self.max_value is not None:
            parts.append(f"{self.min_value:g} to {self.max_value:g}")
        elif self.min_value is not None:
            parts.append(f">= {self.min_value:g}")
        elif self.max_value is not None:
            parts.append(f"<= {self.max_value:g}")
        if self.references is not None:
            parts.append(f"references `{self.references[0]}.{self.references[1]}`")
        if self.pattern_hint:
            parts.append(self.pattern_hint)
        if self.dtype == "timestamp":
            parts.append("ISO 8601 (UTC if no offset) or epoch seconds, 1970-2100")
        return "; ".join(parts) if parts else "-"


@dataclass(frozen=True)
class ConditionalRule:
    """A cross-column rule: when ``when_column == when_value``, ``column`` must satisfy the bounds.

    Used for ratings: the ``value`` of a ``rating`` event is required and an integer from 1 to 5, while
    the ``value`` of other events is optional.
    """

    when_column: str
    when_value: str
    column: str
    required: bool
    min_value: float
    max_value: float
    integer: bool
    description: str

    def text(self) -> str:
        return self.description


@dataclass(frozen=True)
class TableSpec:
    """A table: its columns in canonical order, cross-column rules and what it is for."""

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    rules: tuple[ConditionalRule, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def key(self) -> str | None:
        """The unique id column, if the table has one."""
        for col in self.columns:
            if col.unique:
                return col.name
        return None


USERS = TableSpec(
    name="users",
    description=(
        "Pseudonymous learners. Only coarse attributes are allowed; any other column (name, e-mail, "
        "address, birth date, ...) is rejected."
    ),
    columns=(
        ColumnSpec(
            "user_id",
            "str",
            description="pseudonym issued by the platform (never a name or e-mail)",
            unique=True,
            pattern=ID_PATTERN,
            pattern_hint=ID_HINT,
        ),
        ColumnSpec("age_band", "str", required=False, description="coarse age band", choices=AGE_BANDS),
        ColumnSpec(
            "region",
            "str",
            required=False,
            description="coarse region",
            pattern=REGION_PATTERN,
            pattern_hint=REGION_HINT,
        ),
        ColumnSpec(
            "life_stage", "str", required=False, description="self-declared life stage", choices=LIFE_STAGES
        ),
    ),
)

ITEMS = TableSpec(
    name="items",
    description="Knowledge items sold on the platform: courses, e-books and audio lectures.",
    columns=(
        ColumnSpec(
            "item_id", "str", description="item id", unique=True, pattern=ID_PATTERN, pattern_hint=ID_HINT
        ),
        ColumnSpec("kind", "str", description="item format", choices=ITEM_KINDS),
        ColumnSpec("title", "str", description="title as shown in the catalogue"),
        ColumnSpec(
            "description", "str", required=False, description="catalogue text (the title is used if empty)"
        ),
        ColumnSpec("category", "str", description="catalogue category, e.g. `Business Finance`"),
        ColumnSpec("price", "float", description="list price in the platform currency", min_value=0.0),
        ColumnSpec("level", "str", required=False, description="difficulty", choices=ITEM_LEVELS),
    ),
)

INTERACTIONS = TableSpec(
    name="interactions",
    description="Course-side behaviour, one row per event.",
    columns=(
        ColumnSpec(
            "event_id",
            "str",
            required=False,
            description=(
                "the platform's id of the event (required when ingesting: sending it again changes nothing)"
            ),
            unique=True,
            pattern=ID_PATTERN,
            pattern_hint=ID_HINT,
        ),
        ColumnSpec("user_id", "str", description="who", references=("users", "user_id")),
        ColumnSpec("item_id", "str", description="which item", references=("items", "item_id")),
        ColumnSpec("event", "str", description="what happened", choices=EVENTS),
        ColumnSpec(
            "value",
            "float",
            required=False,
            description="rating (1-5) for `rating`; amount paid for `purchase`; otherwise optional",
            min_value=0.0,
        ),
        ColumnSpec("timestamp", "timestamp", description="when"),
    ),
    rules=(
        ConditionalRule(
            when_column="event",
            when_value="rating",
            column="value",
            required=True,
            min_value=1.0,
            max_value=5.0,
            integer=True,
            description="`value` is required for `rating` events and is an integer from 1 to 5",
        ),
    ),
)

PRODUCTS = TableSpec(
    name="products",
    description="Finance and insurance products offered by partner banks and insurers.",
    columns=(
        ColumnSpec(
            "product_id",
            "str",
            description="product id",
            unique=True,
            pattern=ID_PATTERN,
            pattern_hint=ID_HINT,
        ),
        ColumnSpec("kind", "str", description="product line", choices=PRODUCT_KINDS),
        ColumnSpec("name", "str", description="product name"),
        ColumnSpec(
            "description", "str", required=False, description="product text (the name is used if empty)"
        ),
        ColumnSpec("risk_level", "int", description="risk class (1 = lowest)", min_value=1, max_value=5),
        ColumnSpec("min_premium", "float", description="minimum premium or investment", min_value=0.0),
    ),
)

CONVERSIONS = TableSpec(
    name="conversions",
    description="A learner taking up a partner product (the event that is settled on chain).",
    columns=(
        ColumnSpec("user_id", "str", description="who", references=("users", "user_id")),
        ColumnSpec("product_id", "str", description="which product", references=("products", "product_id")),
        ColumnSpec("timestamp", "timestamp", description="when"),
        ColumnSpec("value", "float", required=False, description="premium or amount invested", min_value=0.0),
    ),
)

#: All tables, in load order (referenced tables before the tables referencing them).
SCHEMA: dict[str, TableSpec] = {t.name: t for t in (USERS, ITEMS, INTERACTIONS, PRODUCTS, CONVERSIONS)}
TABLE_NAMES: tuple[str, ...] = tuple(SCHEMA)


def render_markdown() -> str:
    """Markdown tables for every table in :data:`SCHEMA` (embedded verbatim in ``docs/data-schema.md``)."""
    out: list[str] = []
    for table in SCHEMA.values():
        out.append(f"### `{table.name}`\n")
        out.append(table.description + "\n")
        out.append("| column | type | required | constraints | meaning |")
        out.append("|---|---|---|---|---|")
        for col in table.columns:
            req = "yes" if col.required else "no"
            out.append(
                f"| `{col.name}` | {col.dtype} | {req} | {col.constraint_text()} | {col.description} |"
            )
        for rule in table.rules:
            out.append(f"\nRule: {rule.text()}.")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
