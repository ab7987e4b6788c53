"""The HTTP client of a recloop server (docs/serving.md): one method per route of the API.

Standard library only (urllib). A Client holds no connection between calls and is safe to share
between threads. Requests that are safe to repeat (reads, PUT, DELETE, and feedback, whose events
carry ids) are retried on a connection error or timeout, on 429 and on 503, with exponential
backoff, waiting at least what the server's Retry-After asks; other POSTs only on 429 (refused
before anything was done).
"""
from __future__ import annotations

import datetime
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import RecloopConnectionError, RecloopError, error_from_response
from .types import (CatalogEntry, Event, FeedbackResult, Rejected, RecommendationList,
                    RetrainOutcome, RetrainState, StoredEvent, UserFeedback, UsersPage,
                    encode_timestamp)

__all__ = ["Client", "MAX_FEEDBACK_EVENTS", "MAX_BODY_BYTES"]

# The server's defaults: events one POST /v1/feedback may carry (serve --max-feedback-events,
# serving/feedback.h FeedbackOptions::max_events_per_request) and the largest request body
# (serve --max-body-bytes, 1 MiB). A batch of 10,000 events with ids is over 1 MiB, so batches
# are cut at whichever comes first.
MAX_FEEDBACK_EVENTS = 10_000
MAX_BODY_BYTES = 1 << 20

QueryValue = Union[None, str, int, bool, Sequence[str]]
EventLike = Union[Event, Mapping[str, Any]]


def _query(params: Mapping[str, QueryValue]) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, (str, int)):
            out.append((key, str(value)))
        else:
            out.extend((key, str(v)) for v in value)
    return out


def _segment(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


class Client:
    """A recloop server at `base_url` (e.g. "http://127.0.0.1:8080").

    api_key: sent as `Authorization: Bearer <key>` on every request (writes and admin routes
      need one; reads too on a server started with --auth-reads).
    timeout: seconds a request may take (connect, and each read of the answer).
    retries: how many times a retriable failure is retried (so at most retries + 1 attempts).
    backoff: the first wait before a retry, doubled at each further one, capped by max_backoff;
      a Retry-After from the server is waited instead when longer (capped by max_retry_after).
    max_batch_events / max_batch_bytes: the server's caps on one feedback POST (its flags
      --max-feedback-events and --max-body-bytes); feedback() cuts batches under both.
    """

    def __init__(self, base_url: str, api_key: Optional[str] = None, timeout: float = 10.0,
                 retries: int = 3, backoff: float = 0.25, max_backoff: float = 8.0,
                 max_retry_after: float = 60.0, max_batch_events: int = MAX_FEEDBACK_EVENTS,
                 max_batch_bytes: int = MAX_BODY_BYTES):
        if retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("retries and backoff must be >= 0 and timeout > 0")
        if max_batch_events < 1 or max_batch_bytes < 64:
            raise ValueError("max_batch_events must be >= 1 and max_batch_bytes >= 64")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self._sleep = time.sleep  # replaced in tests that must not wait

    # ---- transport ----
    def _send_once(self, method: str, url: str, body: Optional[bytes],
                   timeout: float) -> Tuple[int, bytes, str]:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            with e:
                raise error_from_response(e.code, e.read(), e.headers.get("Retry-After"))

    def _request(self, method: str, path: str, query: Optional[Mapping[str, QueryValue]] = None,
                 body: Optional[bytes] = None, idempotent: bool = True,
                 timeout: Optional[float] = None, counter: Optional[List[int]] = None
                 ) -> Tuple[int, bytes, str]:
        """(status, body, content type) of a 2xx answer; raises RecloopError otherwise.
        counter[0], if given, counts the attempts."""
        url = self.base_url + path
        if query:
            encoded = urllib.parse.urlencode(_query(query))
            if encoded:
                url += "?" + encoded
        for attempt in range(self.retries + 1):
            if counter is not None:
                counter[0] += 1
            wait = min(self.backoff * (2 ** attempt), self.max_backoff)
            try:
                return self._send_once(method, url, body, timeout or self.timeout)
            except RecloopError as e:
                retriable = e.status == 429 or (e.status == 503 and idempotent)
                if not retriable or attempt == self.retries:
                    raise
                if e.retry_after is not None:
                    wait = max(wait, min(e.retry_after, self.max_retry_after))
            except (OSError, http.client.HTTPException) as e:
                # Refused, reset, closed before the answer, timed out: whether the server acted
                # on the request is unknown, so only a request that is safe to repeat is.
                if not idempotent or attempt == self.retries:
                    reason = getattr(e, "reason", None) or e
                    raise RecloopConnectionError(f"{method} {url}: {reason!r}") from e
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, query: Optional[Mapping[str, QueryValue]] = None,
              body: Any = None, idempotent: bool = True,
              timeout: Optional[float] = None) -> Any:
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        _, text, _ = self._request(method, path, query, data, idempotent, timeout)
        return json.loads(text.decode("utf-8")) if text else None

    # ---- lists ----
    def recommendations(self, user: str, n: Optional[int] = None, offset: Optional[int] = None,
                        category: Union[None, str, Sequence[str]] = None,
                        exclude: Optional[Iterable[str]] = None, details: Optional[bool] = None,
                        predicted_rating: Optional[bool] = None,
                        explain: Optional[bool] = None,
                        min_seq: Optional[int] = None) -> RecommendationList:
        """GET /v1/users/{user}/recommendations: the user's top items (popular items for a user
        the model does not know). `category` keeps items of any of the categories; `exclude`
        drops items; details adds titles and categories, predicted_rating the rating head's
        prediction, explain the history items behind each personalised item. `min_seq` (a
        FeedbackResult's `seq`): on replicas of a shared store, the list reflects that
        feedback whichever replica answers."""
        query = {"n": n, "offset": offset, "category": _categories(category),
                 "exclude": ",".join(exclude) if exclude else None, "details": details,
                 "predicted_rating": predicted_rating, "explain": explain, "min_seq": min_seq}
        return RecommendationList.from_json(
            self._json("GET", f"/v1/users/{_segment(user)}/recommendations", query))

    def similar(self, item: str, n: Optional[int] = None, offset: Optional[int] = None,
                category: Union[None, str, Sequence[str]] = None,
                exclude: Optional[Iterable[str]] = None,
                details: Optional[bool] = None) -> RecommendationList:
        """GET /v1/items/{item}/similar (NotFound for an item the model does not know)."""
        query = {"n": n, "offset": offset, "category": _categories(category),
                 "exclude": ",".join(exclude) if exclude else None, "details": details}
        return RecommendationList.from_json(
            self._json("GET", f"/v1/items/{_segment(item)}/similar", query))

    def popular(self, n: Optional[int] = None, offset: Optional[int] = None,
                category: Union[None, str, Sequence[str]] = None,
                details: Optional[bool] = None) -> RecommendationList:
        """GET /v1/popular."""
        query = {"n": n, "offset": offset, "category": _categories(category), "details": details}
        return RecommendationList.from_json(self._json("GET", "/v1/popular", query))

    def users(self, n: Optional[int] = None, offset: Optional[int] = None) -> UsersPage:
        """GET /v1/users: a page of the live model's customer IDs and their total."""
        j = self._json("GET", "/v1/users", {"n": n, "offset": offset})
        return UsersPage(users=list(j["users"]), total=int(j["total"]))

    # ---- feedback ----
    def feedback(self, events: Iterable[EventLike]) -> FeedbackResult:
        """POST /v1/feedback, in batches under the server's caps.

        Every event without an id is given a fresh uuid4 id first, written back into the Event or
        dict passed in: every retry of a batch (connection lost, timeout, 429, 503) sends the same
        ids, and so does calling feedback() again with the same events after an exception, so
        the server stores each event once and counts a repeat under `duplicates`. On an error
        after retries the exception carries the batches acknowledged so far in
        `feedback_result`. Events the server refuses (a bad type, ...) are in `rejected`, with
        their index in `events`."""
        events = list(events)
        encoded: List[bytes] = []
        ids: List[str] = []
        for e in events:
            body = _event_json(e)
            ids.append(body["id"])
            encoded.append(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        result = FeedbackResult(accepted=0, duplicates=0, rejected=[], ids=ids, batches=0,
                                attempts=0)
        for start, end in self._batches(encoded):
            counter = [0]
            try:
                _, text, _ = self._request("POST", "/v1/feedback",
                                           body=b"[" + b",".join(encoded[start:end]) + b"]",
                                           idempotent=True, counter=counter)
            except RecloopError as e:
                result.attempts += counter[0]
                e.feedback_result = result  # type: ignore[attr-defined]
                raise
            ack = json.loads(text.decode("utf-8"))
            result.batches += 1
            result.attempts += counter[0]
            result.accepted += int(ack.get("accepted", 0))
            result.duplicates += int(ack.get("duplicates", 0))
            result.seq = max(result.seq, int(ack.get("seq", 0)))
            result.rejected.extend(Rejected(start + int(r["index"]), str(r["error"]))
                                   for r in ack.get("rejected", []))
        return result

    def _batches(self, encoded: Sequence[bytes]) -> Iterable[Tuple[int, int]]:
        """[start, end) ranges of `encoded` whose JSON array fits both batch caps (an event
        larger than the byte cap alone goes in a batch of its own: the server says 413)."""
        start, size = 0, 2  # the brackets
        for i, e in enumerate(encoded):
            count = i - start
            if count and (count >= self.max_batch_events or
                          size + len(e) + 1 > self.max_batch_bytes):
                yield start, i
                start, size = i, 2
            size += len(e) + (1 if i > start else 0)
        if start < len(encoded):
            yield start, len(encoded)

    def user_feedback(self, user: str, limit: Optional[int] = None) -> UserFeedback:
        """GET /v1/users/{user}/feedback: the user's stored events, oldest first."""
        j = self._json("GET", f"/v1/users/{_segment(user)}/feedback", {"limit": limit})
        return UserFeedback(user=j["user"], events=[StoredEvent.from_json(e) for e in j["events"]])

    def erase_user(self, user: str) -> int:
        """DELETE /v1/users/{user}: erases the user's events; returns how many."""
        return int(self._json("DELETE", f"/v1/users/{_segment(user)}")["erased_events"])

    # ---- catalogue ----
    def get_item(self, item: str) -> CatalogEntry:
        """GET /v1/items/{item} (NotFound for an item neither the model nor catalogue knows)."""
        return CatalogEntry.from_json(self._json("GET", f"/v1/items/{_segment(item)}"))

    def put_item(self, item: str, title: Optional[str] = None,
                 categories: Optional[Sequence[str]] = None,
                 available: Optional[bool] = None) -> CatalogEntry:
        """PUT /v1/items/{item}: replaces the item's entry with the fields given."""
        body: Dict[str, Any] = {}
        if title is not None:
            body["title"] = title
        if categories is not None:
            body["categories"] = list(categories)
        if available is not None:
            body["available"] = available
        return CatalogEntry.from_json(self._json("PUT", f"/v1/items/{_segment(item)}", body=body))

    def delete_item(self, item: str) -> CatalogEntry:
        """DELETE /v1/items/{item}: marks it unavailable (never recommended again)."""
        return CatalogEntry.from_json(self._json("DELETE", f"/v1/items/{_segment(item)}"))

    # ---- model and admin ----
    def model(self) -> Dict[str, Any]:
        """GET /v1/model: the live version's metadata and lineage."""
        return self._json("GET", "/v1/model")

    def retrain_status(self) -> RetrainState:
        """GET /v1/admin/retrain."""
        j = self._json("GET", "/v1/admin/retrain")
        last = j.get("last")
        return RetrainState(running=bool(j["running"]),
                            last=RetrainOutcome.from_json(last) if last else None)

    def retrain(self, wait: bool = False, timeout: Optional[float] = None
                ) -> Optional[RetrainOutcome]:
        """POST /v1/admin/retrain: starts a retrain; None once started (202), or with wait=True
        its outcome (give a timeout long enough for a training). Conflict while one runs."""
        j = self._json("POST", "/v1/admin/retrain", {"wait": True} if wait else None,
                       idempotent=False, timeout=timeout)
        return RetrainOutcome.from_json(j) if wait else None

    def rollback(self) -> str:
        """POST /v1/admin/rollback: the version before the live one goes live again; returns it
        (Conflict if there is none)."""
        return self._json("POST", "/v1/admin/rollback", idempotent=False)["model_version"]

    def experiments(self) -> Dict[str, Any]:
        """GET /v1/admin/experiments: the A/B test report (NotFound without an experiment)."""
        return self._json("GET", "/v1/admin/experiments")

    # ---- operations ----
    def health(self) -> Dict[str, Any]:
        """GET /healthz: {"status":"ok"} while the process is up."""
        return self._json("GET", "/healthz")

    def ready(self) -> Dict[str, Any]:
        """GET /readyz: {"status":"ready","model_version":...}; Unavailable before a model."""
        return self._json("GET", "/readyz")

    def metrics(self) -> str:
        """GET /metrics: the Prometheus text."""
        _, text, _ = self._request("GET", "/metrics")
        return text.decode("utf-8")


def _categories(category: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    if category is None:
        return None
    return [category] if isinstance(category, str) else list(category)


def _event_json(e: EventLike) -> Dict[str, Any]:
    """The JSON of one event, after giving it an id if it had none (in the caller's object)."""
    if isinstance(e, Event):
        if not e.id:
            e.id = str(uuid.uuid4())
        return e.to_json()
    if not isinstance(e, Mapping):
        raise TypeError(f"an event must be an Event or a dict, got {type(e).__name__}")
    if not e.get("id"):
        if not isinstance(e, dict):
            raise TypeError("an event without an id must be a mutable dict (or an Event)")
        e["id"] = str(uuid.uuid4())
    body = {k: v for k, v in e.items() if v is not None}
    if isinstance(body.get("timestamp"), (datetime.datetime, float)):
        body["timestamp"] = encode_timestamp(body["timestamp"])
    return body
