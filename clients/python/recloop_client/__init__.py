"""Python client of the recloop recommendation server, standard library only.

    from recloop_client import Client, Event
    c = Client("http://127.0.0.1:8080", api_key="...")
    for r in c.recommendations("u1", n=5):
        print(r.item, r.score)
    c.feedback([Event("u1", "i42", "click")])

and, for notebooks, `load_model(dir)` (factors as numpy arrays if numpy is importable) and
`read_events(path)` (a training file as `recloop train --data` reads it).
"""
from .client import MAX_BODY_BYTES, MAX_FEEDBACK_EVENTS, Client
from .data import Interaction, iter_events, read_events
from .errors import (BadRequest, Conflict, Forbidden, MethodNotAllowed, NotFound,
                     RateLimited, RecloopConnectionError, RecloopError, ServerError,
                     Unauthorized, Unavailable)
from .model import Model, ModelFormatError, load_model, resolve_model_dir
from .types import (Because, CatalogEntry, Event, Explanation, FeedbackResult, Recommendation,
                    RecommendationList, Rejected, RetrainOutcome, RetrainState, StoredEvent,
                    UserFeedback, UsersPage)

__version__ = "0.1.0"

__all__ = [
    "Client", "MAX_BODY_BYTES", "MAX_FEEDBACK_EVENTS", "Event", "Recommendation",
    "RecommendationList", "Explanation", "Because", "FeedbackResult", "Rejected", "StoredEvent",
    "UserFeedback", "CatalogEntry", "UsersPage", "RetrainOutcome", "RetrainState",
    "RecloopError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "MethodNotAllowed",
    "Conflict", "RateLimited", "ServerError", "Unavailable", "RecloopConnectionError",
    "Model", "ModelFormatError", "load_model", "resolve_model_dir", "Interaction",
    "read_events", "iter_events",
]
