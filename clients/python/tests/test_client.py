#!/usr/bin/python3
"""The Python client against a real `recloop serve` (tests/support.py): typed lists, feedback
stored and read back, a lost answer retried with the same event ids and counted once, errors as
exception classes, the catalogue, the admin routes with a key, a real 429 honoured.

Usage: test_client.py RECLOOP_BINARY [unittest arguments]
"""
import json
import os
import re
import sys
import time
import unittest
import uuid

import support
from recloop_client import (BadRequest, CatalogEntry, Client, Event, FeedbackResult, Forbidden,
                            NotFound, RateLimited, RecloopConnectionError, RecloopError,
                            Recommendation, RecommendationList, RetrainOutcome, RetrainState,
                            Unauthorized, Unavailable)


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = support.Server(experiment=True)
        cls.client = Client(cls.server.base, api_key=support.ADMIN_KEY, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def new_user(self):
        return "py-" + uuid.uuid4().hex[:12]

    # ---- lists ----
    def test_1_lists_are_typed(self):
        ready = self.client.ready()
        self.assertEqual(ready["status"], "ready")
        recs = self.client.recommendations("u3", n=5)
        self.assertIsInstance(recs, RecommendationList)
        self.assertEqual(len(recs), 5)
        self.assertEqual(recs.user, "u3")
        self.assertEqual(recs.model_version, ready["model_version"])
        self.assertRegex(recs.recommendation_id, r"^[0-9a-f]{32}$")
        self.assertIn(recs.variant, ("control", "narrow"))
        for r in recs:
            self.assertIsInstance(r, Recommendation)
            self.assertEqual(r.source, "personalized")
            self.assertIsInstance(r.score, float)
        scores = [r.score for r in recs]
        self.assertEqual(scores, sorted(scores, reverse=True))
        # Seen items are never recommended: u3's training items are not in the list.
        seen = {item for user, item, _, _ in self.server.rows if user == "u3"}
        self.assertFalse(seen & set(recs.item_ids))
        # offset pages on, exclude drops items.
        page2 = self.client.recommendations("u3", n=2, offset=1)
        self.assertEqual(page2.item_ids, recs.item_ids[1:3])
        six = self.client.recommendations("u3", n=6)
        self.assertEqual(six.item_ids[:5], recs.item_ids)
        excluded = self.client.recommendations("u3", n=4, exclude=recs.item_ids[:2])
        self.assertEqual(excluded.item_ids, six.item_ids[2:6])

        explained = self.client.recommendations("u3", n=3, explain=True)
        for r in explained:
            self.assertIsNotNone(r.explanation)
            self.assertEqual(r.explanation.vector, "trained")
            self.assertTrue(1 <= len(r.explanation.because) <= 3)
            self.assertTrue(all(b.item in seen for b in r.explanation.because))

        similar = self.client.similar("i5", n=4)
        self.assertEqual(similar.item, "i5")
        self.assertEqual(len(similar), 4)
        self.assertNotIn("i5", similar.item_ids)
        self.assertTrue(all(r.source == "similar" for r in similar))

        popular = self.client.popular(n=6)
        self.assertEqual(len(popular), 6)
        self.assertTrue(all(r.source == "popular" for r in popular))
        self.assertEqual([r.score for r in popular], sorted((r.score for r in popular),
                                                            reverse=True))
        # A user the model does not know gets the popular items.
        cold = self.client.recommendations(self.new_user(), n=6)
        self.assertEqual(cold.item_ids, popular.item_ids)

        page = self.client.users(n=5, offset=2)
        self.assertEqual(page.total, 80)
        self.assertEqual(len(page.users), 5)

    def test_1b_the_readme_example_runs(self):
        with open(os.path.join(support.PACKAGE_ROOT, "README.md")) as f:
            example = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
        with open(os.path.join(self.server.dir, "key.txt"), "w") as f:
            f.write(support.ADMIN_KEY + "\n")
        before = len(self.client.user_feedback("u1").events)
        out = support.run([sys.executable, "-c",
                           example.replace("http://127.0.0.1:8080", self.server.base)],
                          cwd=self.server.dir,
                          env=dict(os.environ, PYTHONPATH=support.PACKAGE_ROOT)).stdout
        lines = out.splitlines()
        self.assertEqual(len(lines), 5, out)
        self.assertTrue(all(line.endswith(" personalized") for line in lines), out)
        stored = self.client.user_feedback("u1").events
        self.assertEqual([(e.item, e.type) for e in stored[before:]],
                         [("i42", "click"), ("i7", "purchase")])

    # ---- feedback ----
    def test_2_feedback_is_stored_and_folded_in(self):
        user = self.new_user()
        events = [Event(user, "i1", "view"), {"user": user, "item": "i2", "type": "click"},
                  Event(user, "i3", "purchase", timestamp=1_750_000_000)]
        result = self.client.feedback(events)
        self.assertIsInstance(result, FeedbackResult)
        self.assertEqual((result.accepted, result.duplicates, result.rejected), (3, 0, []))
        self.assertEqual(result.batches, 1)
        # Every event got a fresh id before it was sent, written back into what was passed.
        self.assertEqual(len(set(result.ids)), 3)
        self.assertEqual(result.ids, [events[0].id, events[1]["id"], events[2].id])
        stored = self.client.user_feedback(user)
        self.assertEqual([e.id for e in stored.events], result.ids)
        self.assertEqual([(e.item, e.type) for e in stored.events],
                         [("i1", "view"), ("i2", "click"), ("i3", "purchase")])
        self.assertEqual(stored.events[2].timestamp, "2025-06-15T15:06:40Z")
        # The batch's seq is its last event's, the stored events' largest.
        self.assertEqual(result.seq, max(e.seq for e in stored.events))
        # The new customer's list is personal now, without the items they acted on (min_seq:
        # read-your-writes on any replica; a single server answers at once).
        recs = self.client.recommendations(user, n=5, min_seq=result.seq)
        self.assertTrue(all(r.source == "personalized" for r in recs), recs)
        self.assertFalse({"i1", "i2", "i3"} & set(recs.item_ids))
        # Sending the same events again stores nothing new.
        again = self.client.feedback(events)
        self.assertEqual((again.accepted, again.duplicates), (3, 3))
        self.assertEqual(again.ids, result.ids)
        self.assertEqual(len(self.client.user_feedback(user).events), 3)
        # Erasure.
        self.assertEqual(self.client.erase_user(user), 3)
        self.assertEqual(self.client.user_feedback(user).events, [])

    def test_3_feedback_is_batched_and_rejections_keep_their_index(self):
        user = self.new_user()
        client = Client(self.server.base, api_key=support.ADMIN_KEY, max_batch_events=2)
        events = [Event(user, f"i{i}", "view") for i in range(5)]
        events[3] = Event(user, "i3", "no-such-type")
        result = client.feedback(events)
        self.assertEqual(result.batches, 3)
        self.assertEqual((result.accepted, result.duplicates), (4, 0))
        self.assertEqual([r.index for r in result.rejected], [3])
        self.assertIn("type", result.rejected[0].error)
        self.assertEqual(len(self.client.user_feedback(user).events), 4)
        # Batches are cut by bytes too: a cap that two events fit under, and not three.
        more = [Event(user, f"i{i}", "click", id=str(uuid.uuid4())) for i in range(10, 16)]
        size = len(json.dumps(more[0].to_json(), separators=(",", ":")))
        small = Client(self.server.base, api_key=support.ADMIN_KEY, max_batch_bytes=2 * size + 3)
        result = small.feedback(more)
        self.assertEqual((result.batches, result.accepted), (3, 6))
        self.assertEqual(len(self.client.user_feedback(user).events), 10)

    def test_4_a_lost_answer_is_retried_with_the_same_ids_and_counted_once(self):
        user = self.new_user()
        proxy = support.LossyProxy(self.server.port, drop=1)
        try:
            client = Client(proxy.base, api_key=support.ADMIN_KEY, retries=3, backoff=0.05)
            events = [Event(user, f"i{i}", "click") for i in range(4)]
            result = client.feedback(events)
        finally:
            proxy.close()
        # The server stored the batch and answered; the answer was lost; the client sent the
        # batch again with the same ids, and the server reported all four as duplicates.
        self.assertEqual(len(proxy.dropped), 1)
        self.assertIn(b'"accepted":4', proxy.dropped[0])
        self.assertIn(b'"duplicates":0', proxy.dropped[0])
        self.assertEqual(proxy.connections, 2)
        self.assertEqual(result.attempts, 2)
        self.assertEqual((result.accepted, result.duplicates), (4, 4))
        stored = self.client.user_feedback(user).events
        self.assertEqual(len(stored), 4)
        self.assertEqual([e.id for e in stored], [e.id for e in events])
        metrics = self.client.metrics()
        self.assertIn("recloop_model_loaded 1", metrics)

    def test_4b_after_a_failed_batch_calling_again_is_safe(self):
        user = self.new_user()
        proxy = support.LossyProxy(self.server.port, drop_only={2})
        events = [Event(user, f"i{i}", "view") for i in range(4)]
        try:
            client = Client(proxy.base, api_key=support.ADMIN_KEY, retries=0,
                            max_batch_events=2)
            with self.assertRaises(RecloopConnectionError) as e:
                client.feedback(events)
        finally:
            proxy.close()
        # The first batch was acknowledged; the second was stored, but its answer was lost.
        partial = e.exception.feedback_result
        self.assertEqual((partial.batches, partial.accepted, partial.attempts), (1, 2, 2))
        self.assertEqual(len(self.client.user_feedback(user).events), 4)
        # The same events again (their ids were written into them): nothing is stored twice.
        again = self.client.feedback(events)
        self.assertEqual((again.accepted, again.duplicates), (4, 4))
        self.assertEqual(len(self.client.user_feedback(user).events), 4)

    def test_5_a_request_that_is_not_safe_to_repeat_is_not_retried(self):
        proxy = support.LossyProxy(self.server.port, drop=1)
        try:
            client = Client(proxy.base, api_key=support.ADMIN_KEY, retries=3, backoff=0.01)
            with self.assertRaises(RecloopConnectionError):
                client.rollback()  # the server acted (or refused); the client cannot know
        finally:
            proxy.close()
        self.assertEqual(proxy.connections, 1)

    # ---- errors ----
    def test_6_errors_are_exceptions_of_their_class(self):
        with self.assertRaises(Unauthorized) as e:
            Client(self.server.base, api_key="wrong-key").put_item("i1", title="x")
        self.assertEqual((e.exception.status, e.exception.code), (401, "unauthorized"))
        with self.assertRaises(Unauthorized):
            Client(self.server.base).feedback([Event("u1", "i1", "view")])
        with self.assertRaises(Forbidden) as e:
            Client(self.server.base, api_key=support.READ_KEY).retrain_status()
        self.assertEqual((e.exception.status, e.exception.code), (403, "forbidden"))
        # The read key reads.
        self.assertEqual(len(Client(self.server.base, api_key=support.READ_KEY).popular(n=2)), 2)
        with self.assertRaises(NotFound) as e:
            self.client.similar("no-such-item")
        self.assertEqual((e.exception.status, e.exception.code), (404, "unknown_item"))
        self.assertIn("no-such-item", e.exception.message)
        with self.assertRaises(NotFound):
            self.client.get_item("no-such-item")
        with self.assertRaises(BadRequest) as e:
            self.client.recommendations("u1", n=0)
        self.assertEqual((e.exception.status, e.exception.code), (400, "bad_parameter"))
        with self.assertRaises(BadRequest) as e:
            self.client.user_feedback("u1", limit=0)
        self.assertEqual(e.exception.code, "bad_parameter")
        self.assertTrue(issubclass(BadRequest, RecloopError))

    def test_7_connection_failures_back_off_and_give_up(self):
        client = Client(f"http://127.0.0.1:{support.free_port()}", retries=3, backoff=0.1,
                        max_backoff=0.3, timeout=2)
        waits = []
        client._sleep = waits.append
        with self.assertRaises(RecloopConnectionError) as e:
            client.popular(n=1)
        self.assertIsNone(e.exception.status)
        self.assertEqual(waits, [0.1, 0.2, 0.3])  # exponential, capped, then gives up

    # ---- catalogue ----
    def test_8_catalogue_put_get_delete(self):
        entry = self.client.put_item("i7", title="Seven", categories=["drama", "new"],
                                     available=True)
        self.assertEqual(entry, CatalogEntry("i7", True, "Seven", ["drama", "new"], True))
        self.assertEqual(self.client.get_item("i7"), entry)
        drama = self.client.popular(n=5, category="drama", details=True)
        self.assertEqual([(r.item, r.title, r.categories) for r in drama],
                         [("i7", "Seven", ["drama", "new"])])
        deleted = self.client.delete_item("i7")
        self.assertFalse(deleted.available)
        self.assertFalse(self.client.get_item("i7").available)
        self.assertNotIn("i7", self.client.popular(n=60).item_ids)
        # An item only the catalogue knows.
        fresh = self.client.put_item("brand-new", title="New")
        self.assertFalse(fresh.in_model)
        self.assertEqual(self.client.get_item("brand-new").title, "New")

    # ---- admin ----
    def test_9_admin_routes_with_the_key(self):
        model = self.client.model()
        self.assertEqual(model["users"], "80")  # int64 as proto3 JSON writes it
        self.assertEqual(model["params"]["algorithm"], "als")
        experiments = self.client.experiments()
        self.assertEqual(experiments["experiment"], "py-client")
        self.assertEqual([v["name"] for v in experiments["variants"]], ["control", "narrow"])
        state = self.client.retrain_status()
        self.assertIsInstance(state, RetrainState)
        self.assertFalse(state.running)
        outcome = self.client.retrain(wait=True, timeout=120)
        self.assertIsInstance(outcome, RetrainOutcome)
        self.assertIn(outcome.outcome, ("promoted", "refused", "skipped"))
        self.assertEqual(self.client.retrain_status().last.outcome, outcome.outcome)
        if outcome.outcome == "promoted":
            self.assertEqual(self.client.ready()["model_version"], outcome.version)
            self.assertEqual(self.client.rollback(), outcome.parent_version)
            self.assertEqual(self.client.ready()["model_version"], outcome.parent_version)
        else:
            with self.assertRaises(RecloopError) as e:
                self.client.rollback()
            self.assertEqual(e.exception.status, 409)


class RateLimitTest(unittest.TestCase):
    """A real 429 from `--rate-limit-per-address` (loopback counted): the client waits the
    Retry-After the server sent and succeeds; with no retries it raises RateLimited."""

    @classmethod
    def setUpClass(cls):
        cls.server = support.Server(["--rate-limit-per-address", "1",
                                     "--rate-limit-per-address-burst", "1",
                                     "--rate-limit-loopback"])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_retry_after_is_honoured(self):
        impatient = Client(self.server.base, retries=0)
        impatient.popular(n=1)
        with self.assertRaises(RateLimited) as e:
            impatient.popular(n=1)
        self.assertEqual((e.exception.status, e.exception.code), (429, "rate_limited"))
        self.assertGreaterEqual(e.exception.retry_after, 1)
        patient = Client(self.server.base, retries=3, backoff=0.01)
        waits = []
        patient._sleep = lambda s: (waits.append(s), time.sleep(s))
        start = time.monotonic()
        self.assertEqual(len(patient.popular(n=1)), 1)
        self.assertTrue(waits and waits[0] >= 1, waits)  # the server's Retry-After, not 0.01
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        # Unavailable is the 503 class, RateLimited carries retry_after.
        self.assertFalse(issubclass(RateLimited, Unavailable))


class NoModelTest(unittest.TestCase):
    """A server with no model yet answers 503 no_model: Unavailable, retried, then raised."""

    @classmethod
    def setUpClass(cls):
        cls.server = support.Server(model=False)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_unavailable_is_retried_then_raised(self):
        client = Client(self.server.base, retries=2, backoff=0.01)
        waits = []
        client._sleep = waits.append
        with self.assertRaises(Unavailable) as e:
            client.ready()
        self.assertEqual((e.exception.status, e.exception.code), (503, "no_model"))
        self.assertEqual(waits, [0.01, 0.02])
        with self.assertRaises(Unavailable):
            client.recommendations("u1")
        self.assertEqual(client.health(), {"status": "ok"})


if __name__ == "__main__":
    unittest.main(argv=support.unittest_argv(), verbosity=2)
