"""Reading training data as `recloop train --data` reads it (data/reader.h), for notebooks.

Formats, detected from the first line: `user::item::rating::timestamp` (MovieLens .dat);
tab-separated without a header (MovieLens u.data: user item rating timestamp); CSV or TSV with a
header naming the columns (user/userId/user_id/customer, item/itemId/item_id/movieId/product,
value/rating/count/weight, timestamp/time/ts, type/event/event_type, case-insensitive, any
order); comma-separated without a header: user,item[,value[,timestamp]].
"""
from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

__all__ = ["Interaction", "read_events", "iter_events", "TYPE_WEIGHTS"]

# The server's and trainer's default weight of an event without a value (serving/feedback.h).
TYPE_WEIGHTS: Dict[str, float] = {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 5.0,
                                  "dislike": -5.0}

_COLUMNS = {
    "user": "user", "userid": "user", "user_id": "user", "customer": "user",
    "item": "item", "itemid": "item", "item_id": "item", "movieid": "item", "product": "item",
    "value": "value", "rating": "value", "count": "value", "weight": "value",
    "timestamp": "timestamp", "time": "timestamp", "ts": "timestamp",
    "type": "type", "event": "type", "event_type": "type",
}


@dataclass
class Interaction:
    """One row: value is the event type's weight (or 1) when the file gives none; timestamp is
    seconds since the epoch (0 when absent); type is None without a type column."""
    user: str
    item: str
    value: float
    timestamp: int = 0
    type: Optional[str] = None


def _timestamp(text: str, where: str) -> int:
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        pass
    try:
        t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise ValueError(f"{where}: timestamp '{text}' is neither integer seconds nor "
                         "ISO 8601 UTC") from None
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp())


def _name(field: str) -> str:
    return field.strip().strip('"').lower()


def iter_events(path: str) -> Iterator[Interaction]:
    """The rows of `path`, one at a time (see the module's formats). Raises ValueError naming
    FILE:LINE for a malformed row."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        if not first:
            raise ValueError(f"{path}: empty")
        first_line = first.rstrip("\r\n")
        if "::" in first_line:
            sep, columns, header = "::", ["user", "item", "value", "timestamp"], False
        else:
            sep = "\t" if "\t" in first_line else ","
            names = [_name(x) for x in first_line.split(sep)]
            header = any(n in _COLUMNS for n in names)
            if header:
                columns = [_COLUMNS.get(n, "") for n in names]
                if "user" not in columns or "item" not in columns:
                    raise ValueError(f"{path}:1: the header names no user or no item column")
            elif sep == "\t":
                columns = ["user", "item", "value", "timestamp"]
            else:  # positional: user,item[,value[,timestamp]]
                columns = ["user", "item", "value", "timestamp"]
        lines = f if header else _chain(first, f)
        for number, line in enumerate(lines, start=2 if header else 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = [x.strip() for x in line.split(sep)]
            where = f"{path}:{number}"
            if len(fields) != len(columns) and (header or len(fields) > 4 or len(fields) < 2):
                raise ValueError(f"{where}: {len(fields)} fields, expected {len(columns)}")
            row = dict(zip(columns, fields))
            if not row.get("user") or not row.get("item"):
                raise ValueError(f"{where}: empty user or item")
            kind = row.get("type") or None
            if row.get("value"):
                try:
                    value = float(row["value"])
                except ValueError:
                    raise ValueError(f"{where}: value '{row['value']}' is not a number") from None
                if not math.isfinite(value):
                    raise ValueError(f"{where}: value is not finite")
            else:
                value = TYPE_WEIGHTS.get(kind or "", 1.0)
            yield Interaction(row["user"], row["item"], value,
                              _timestamp(row.get("timestamp", ""), where), kind)


def _chain(first: str, rest) -> Iterator[str]:
    yield first
    yield from rest


def read_events(path: str) -> List[Interaction]:
    """Every row of a training file, as `recloop train --data` reads it (duplicates not merged).
    For a data frame: pandas.DataFrame(map(dataclasses.asdict, read_events(path)))."""
    return list(iter_events(path))
