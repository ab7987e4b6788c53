"""Typed answers of the recloop HTTP API (docs/serving.md), decoded from its JSON bodies.

Each class keeps the body it was decoded from in `raw`, so a key a newer server adds is never
lost to a caller of an older client.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Union


@dataclass
class Because:
    """One item of the customer's history that weighs in an item's score (explain=true)."""
    item: str
    contribution: float
    share: float
    title: Optional[str] = None  # with details=true


@dataclass
class Explanation:
    """Why a personalised item is shown: score = because_base + because_others + sum of the
    contributions (docs/serving.md, "Why each item is shown")."""
    vector: str  # "trained" or "fold-in"
    because: List[Because]
    because_others: float
    because_base: float


@dataclass
class Recommendation:
    """One item of a list."""
    item: str
    score: float
    source: str  # "personalized", "popular" or "similar"
    title: Optional[str] = None  # with details=true
    categories: Optional[List[str]] = None  # with details=true
    predicted_rating: Optional[float] = None  # with predicted_rating=true (None: unknown)
    explanation: Optional[Explanation] = None  # with explain=true, personalised items only

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "Recommendation":
        explanation = None
        if "vector" in j:
            explanation = Explanation(
                vector=j["vector"],
                because=[Because(b["item"], float(b["contribution"]), float(b["share"]),
                                 b.get("title")) for b in j.get("because", [])],
                because_others=float(j.get("because_others", 0.0)),
                because_base=float(j.get("because_base", 0.0)))
        score = j.get("score")
        return cls(item=j["item"], score=float(score) if score is not None else float("nan"),
                   source=j.get("source", ""), title=j.get("title"),
                   categories=j.get("categories"), predicted_rating=j.get("predicted_rating"),
                   explanation=explanation)


@dataclass
class RecommendationList:
    """A list answer (recommendations, similar items, popular items). Iterating it yields its
    items; `recommendation_id` is what feedback events name to credit this list."""
    items: List[Recommendation]
    model_version: str
    recommendation_id: Optional[str] = None
    user: Optional[str] = None  # recommendations
    item: Optional[str] = None  # similar items
    variant: Optional[str] = None  # the customer's A/B test variant, if any
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "RecommendationList":
        return cls(items=[Recommendation.from_json(i) for i in j.get("items", [])],
                   model_version=j.get("model_version", ""),
                   recommendation_id=j.get("recommendation_id"), user=j.get("user"),
                   item=j.get("item"), variant=j.get("variant"), raw=j)

    def __iter__(self) -> Iterator[Recommendation]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Recommendation:
        return self.items[i]

    @property
    def item_ids(self) -> List[str]:
        return [r.item for r in self.items]


EventTypes = ("view", "click", "cart", "purchase", "dislike", "rating")


@dataclass
class Event:
    """One feedback event (POST /v1/feedback). `type` is one of EventTypes; `value` is needed for
    "rating"; `timestamp` is integer seconds, an ISO 8601 UTC string or a datetime (default: the
    server's now); `id` makes a retried event count once (Client.feedback fills in a uuid4);
    `recommendation_id` names the list the event answers (attribution)."""
    user: str
    item: str
    type: str
    value: Optional[float] = None
    timestamp: Optional[Union[int, str, datetime.datetime]] = None
    id: Optional[str] = None
    recommendation_id: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"user": self.user, "item": self.item, "type": self.type}
        if self.value is not None:
            out["value"] = self.value
        if self.timestamp is not None:
            out["timestamp"] = encode_timestamp(self.timestamp)
        if self.id is not None:
            out["id"] = self.id
        if self.recommendation_id is not None:
            out["recommendation_id"] = self.recommendation_id
        return out


def encode_timestamp(t: Union[int, float, str, datetime.datetime]) -> Union[int, str]:
    """A timestamp as the server takes it: integer seconds or ISO 8601 UTC."""
    if isinstance(t, datetime.datetime):
        if t.tzinfo is not None:
            t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(t, float):
        return int(t)
    return t


@dataclass
class Rejected:
    """An event the server refused (its index in the list given to Client.feedback)."""
    index: int
    error: str


@dataclass
class FeedbackResult:
    """What POST /v1/feedback acknowledged, over every batch: `accepted` counts the events that
    are stored (new or already stored), `duplicates` those among them that were already stored
    (a retry, or an id sent before). `ids` are the events' ids, in the order given."""
    accepted: int
    duplicates: int
    rejected: List[Rejected]
    ids: List[str]
    batches: int = 1
    attempts: int = 1  # HTTP requests made, retries included
    # A seq at or after every acknowledged event (0: none known): recommendations(min_seq=seq)
    # reads them on any replica of a shared event store.
    seq: int = 0


@dataclass
class StoredEvent:
    """An event as the server stored it (GET /v1/users/{user}/feedback)."""
    seq: int
    item: str
    type: str
    timestamp: str  # ISO 8601 UTC
    value: Optional[float] = None
    id: Optional[str] = None

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "StoredEvent":
        return cls(seq=int(j["seq"]), item=j["item"], type=j["type"], timestamp=j["timestamp"],
                   value=j.get("value"), id=j.get("id"))


@dataclass
class UserFeedback:
    user: str
    events: List[StoredEvent]


@dataclass
class CatalogEntry:
    """An item's catalogue entry (GET, PUT, DELETE /v1/items/{item})."""
    item: str
    in_model: bool
    title: str
    categories: List[str]
    available: bool

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "CatalogEntry":
        return cls(item=j["item"], in_model=bool(j.get("in_model")), title=j.get("title", ""),
                   categories=list(j.get("categories", [])), available=bool(j.get("available")))


@dataclass
class UsersPage:
    """A page of the live model's customer IDs (GET /v1/users) and how many it has."""
    users: List[str]
    total: int


@dataclass
class RetrainOutcome:
    """How a retrain ended: outcome "promoted", "refused" or "skipped" (or "failed"), with the
    gate's metric for both models in `gate` when it ran."""
    outcome: str
    parent_version: str
    message: str
    new_events: int
    seconds: float
    finished: str
    version: Optional[str] = None
    gate: Optional[Dict[str, Any]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, j: Dict[str, Any]) -> "RetrainOutcome":
        return cls(outcome=j.get("outcome", ""), parent_version=j.get("parent_version", ""),
                   message=j.get("message", ""), new_events=int(j.get("new_events", 0)),
                   seconds=float(j.get("seconds", 0.0)), finished=j.get("finished", ""),
                   version=j.get("version"), gate=j.get("gate"), raw=j)


@dataclass
class RetrainState:
    """GET /v1/admin/retrain: whether one runs now, and the last outcome (None before any)."""
    running: bool
    last: Optional[RetrainOutcome]
