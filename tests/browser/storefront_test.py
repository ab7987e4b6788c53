#!/usr/bin/python3
"""End-to-end test of the demo storefront page in headless Chromium (Debian's chromium,
chromium-driver and python3-selenium).

Starts `recloop demo --serve` for real on 127.0.0.1 (a small generated store), opens the page,
checks what it shows (titles, categories, sources, model version, live counters), clicks "Buy"
on the first recommendation and checks that the list changed and the bought item is gone, then
starts a new customer (popular items) and checks that one purchase makes their list personal.
Then gives an item the title `<img src=x onerror=alert(1)>` (PUT /v1/items/{item}, open on the
demo's loopback server) and opens a customer whose ID is HTML too: both must show as text, with no
element made of them and no alert; and the page's security headers (CSP, nosniff, no framing)
must be served and the CSP enforced. Saves a screenshot of the page after the purchase as a test
artifact.

Usage: storefront_test.py RECLOOP_BINARY ARTIFACT_DIR
Exit 77 (CTest: skipped) when Chromium, its driver or Selenium is missing, unless
RECLOOP_REQUIRE_BROWSER=1 (scripts/test sets it, so CI cannot skip it).
"""
import json
import os
import shutil
import sys
import tempfile
import unittest
import urllib.parse
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recloop_process import RecloopProcess  # noqa: E402  (tests/recloop_process.py)

RECLOOP = ""
ARTIFACTS = ""
WAIT_SECONDS = 30  # every wait below is bounded by this


class StorefrontTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recloop-storefront-")
        cls.server = None
        try:
            # Training the small demo model takes seconds.
            cls.server = RecloopProcess(
                [RECLOOP, "demo", "--quiet", "--users", "2000", "--items", "400",
                 "--interactions", "60000", "--models", os.path.join(cls.tmp, "models"),
                 "--serve", "--host", "127.0.0.1", "--port", "0"],
                os.path.join(cls.tmp, "server.log"), 120)
        except BaseException:
            cls.tearDownClass()
            raise
        cls.base = cls.server.base
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        cls.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        cls.driver.set_page_load_timeout(WAIT_SECONDS)

    @classmethod
    def tearDownClass(cls):
        driver = getattr(cls, "driver", None)
        if driver is not None:
            driver.quit()
        if cls.server is not None:
            cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----
    def wait(self, condition, message):
        return WebDriverWait(self.driver, WAIT_SECONDS, poll_frequency=0.1).until(
            lambda d: condition(), message=message)

    def cards(self):
        return self.driver.find_elements(By.CSS_SELECTOR, "#recommendations li.card")

    def shown(self):
        """The list on screen: [(item, title, source, categories)]."""
        out = []
        for card in self.cards():
            out.append((card.get_attribute("data-item"),
                        card.find_element(By.CLASS_NAME, "title").text,
                        card.find_element(By.CSS_SELECTOR, "[data-source]")
                            .get_attribute("data-source"),
                        [c.text for c in card.find_elements(By.CSS_SELECTOR, ".chip:not([data-source])")]))
        return out

    def text(self, element_id):
        return self.driver.find_element(By.ID, element_id).text

    def save_screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name)
        self.assertTrue(self.driver.save_screenshot(path), path)
        print(f"screenshot: {path}", flush=True)

    def assert_no_page_errors(self):
        errors = [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]
        self.assertEqual(errors, [], "the page logged errors")

    def open_customer(self, user):
        self.driver.get(f"{self.base}/?user={user}")
        self.wait(lambda: self.text("current-customer") == user and len(self.cards()) == 12,
                  f"the page shows 12 recommendations for {user}")

    # ---- tests ----
    def test_1_buy_changes_the_list_and_removes_the_bought_item(self):
        self.open_customer("u1")
        before = self.shown()
        # What a storefront needs to show: titles and categories from the catalogue, the source
        # of each item, and the model version.
        for item, title, source, categories in before:
            self.assertTrue(title and not title.startswith("Item "), (item, title))
            self.assertEqual(source, "personalized", item)
            self.assertEqual(len(categories), 2, (item, categories))
            self.assertTrue(categories[0].startswith("cluster-"), categories)
        self.assertRegex(self.text("model-version"), r"^v\d+$")
        picker = self.driver.find_elements(By.CSS_SELECTOR, "#customer-select option")
        self.assertEqual(len(picker), 50)

        bought = before[0][0]
        self.cards()[0].find_element(By.CSS_SELECTOR, "button[data-action='purchase']").click()
        self.wait(lambda: self.text("status").startswith("Bought"), "the purchase is confirmed")
        after = self.shown()
        after_ids = [a[0] for a in after]
        self.assertEqual(len(after), 12)
        self.assertNotIn(bought, after_ids, "the bought item is still recommended")
        self.assertNotEqual([b[0] for b in before], after_ids, "the list did not change")
        # Items that entered the list are highlighted.
        fresh = self.driver.find_elements(By.CSS_SELECTOR, "#recommendations li.card.new")
        self.assertEqual(sorted(c.get_attribute("data-item") for c in fresh),
                         sorted(set(after_ids) - {b[0] for b in before}))
        # The purchase is in the activity list and the live counters saw it.
        self.assertIn(f"purchase · #{bought}", self.text("activity"))
        self.wait(lambda: self.text("events-accepted") == "1", "the events counter shows 1")
        self.wait(lambda: "ms" in self.text("freshness"), "the freshness lag is shown")
        self.wait(lambda: "ms" in self.text("recs-p99"), "the recommendation p99 is shown")
        # The purchase named the list it was made from: credited at its position, 1.
        metrics = urllib.request.urlopen(f"{self.base}/metrics").read().decode()
        self.assertRegex(metrics, r'recloop_attributed_events_by_position_total\{position="1",'
                                  r'type="purchase"\} 1\n')
        self.save_screenshot("storefront-after-buy.png")
        self.assert_no_page_errors()

    def test_2_new_customer_starts_from_popular_items_and_gets_personal(self):
        self.open_customer("u2")
        self.driver.find_element(By.ID, "new-customer").click()
        self.wait(lambda: self.text("current-customer").startswith("guest-") and
                  len(self.cards()) == 12 and
                  all(s == "popular" for _, _, s, _ in self.shown()),
                  "a new customer sees the popular items")
        popular = self.shown()
        self.assertIn("popular items", self.text("status"))
        self.cards()[0].find_element(By.CSS_SELECTOR, "button[data-action='purchase']").click()
        self.wait(lambda: self.text("status").startswith("Bought"), "the purchase is confirmed")
        after = self.shown()
        self.assertNotIn(popular[0][0], [a[0] for a in after])
        self.assertTrue(all(s == "personalized" for _, _, s, _ in after),
                        "one purchase should make a new customer's list personal")
        # Why each is shown (explain=true): the one item bought, from the fold-in vector.
        for card in self.cards():
            because = card.find_element(By.CLASS_NAME, "because")
            self.assertEqual(because.text,
                             f"Because you liked {popular[0][1]} (your latest activity)")
            self.assertEqual(because.get_attribute("data-vector"), "fold-in")
        self.assert_no_page_errors()

    def test_3_a_rating_is_posted_with_its_value(self):
        self.open_customer("u3")
        first = self.cards()[0]
        item = first.get_attribute("data-item")
        from selenium.webdriver.support.ui import Select
        Select(first.find_element(By.CSS_SELECTOR, "select[data-action='rating']")).select_by_value("2")
        self.wait(lambda: self.text("status").startswith("Rated"), "the rating is confirmed")
        self.assertIn(f"rating 2 · #{item}", self.text("activity"))
        self.assert_no_page_errors()

    # ---- catalogue strings are text, and the page's headers (issue 23, "secure by default") ----
    def put_item(self, item, entry):
        """PUT /v1/items/{item} as a catalogue tool would (the demo on loopback has no key)."""
        headers = {"Content-Type": "application/json"}
        if os.environ.get("RECLOOP_API_KEY"):
            headers["Authorization"] = "Bearer " + os.environ["RECLOOP_API_KEY"]
        request = urllib.request.Request(
            f"{self.base}/v1/items/{urllib.parse.quote(item, safe='')}",
            data=json.dumps(entry).encode(), headers=headers, method="PUT")
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
            self.assertEqual(response.status, 200)

    def record_alerts(self):
        """Records window.alert calls in every document loaded from now on (window.__alerts),
        still showing them; returns the CDP script's identifier."""
        return self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
            "source": "window.__alerts = []; const shown = window.alert.bind(window); "
                      "window.alert = (m) => { window.__alerts.push(String(m)); shown(m); };"})

    def assert_no_alert(self):
        with self.assertRaises(NoAlertPresentException):
            self.driver.switch_to.alert.dismiss()
        self.assertEqual(self.driver.execute_script("return window.__alerts;"), [])

    def test_4_catalogue_strings_and_ids_are_shown_as_text_never_as_html(self):
        self.open_customer("u4")
        item = self.cards()[0].get_attribute("data-item")
        payload = "<img src=x onerror=alert(1)>"
        category = "<b onmouseover=alert(2)>bold</b>"
        self.put_item(item, {"title": payload, "categories": [category], "available": True})
        script = self.record_alerts()
        try:
            self.open_customer("u4")
            card = self.driver.find_element(By.CSS_SELECTOR, f"li.card[data-item='{item}']")
            # (a) the strings are there, as text
            self.assertEqual(card.find_element(By.CLASS_NAME, "title").text, payload)
            self.assertIn(category, [c.text for c in card.find_elements(By.CSS_SELECTOR, ".chip")])
            # ... also where the page repeats the title: the status line, "Similar to"
            card.find_element(By.CSS_SELECTOR, "button[data-action='view']").click()
            self.wait(lambda: self.text("status").startswith("Viewed"), "the view is confirmed")
            self.assertIn(payload, self.text("status"))
            self.assertEqual(self.text("similar-to"), payload)
            # A customer ID that is HTML: in the heading, the ID box, the requests' paths.
            hostile_user = "<img src=x onerror=alert(3)>"
            self.driver.get(f"{self.base}/?user={urllib.parse.quote(hostile_user)}")
            self.wait(lambda: self.text("current-customer") == hostile_user and
                      len(self.cards()) == 12, "the page shows the customer ID as text")
            self.assertEqual(self.driver.find_element(By.ID, "customer-id").get_attribute("value"),
                             hostile_user)
            # (b) no element came out of them: no image at all, no bold, no handler attribute
            self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "img[src='x'], img, b"),
                             [])
            self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR,
                                                       "[onerror], [onmouseover]"), [])
            # (c) nothing ran
            self.assert_no_alert()
        finally:
            self.driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", script)
        self.assert_no_page_errors()

    def test_5_the_page_is_served_with_a_csp_that_the_browser_enforces(self):
        # (d) the headers of `/` (and of its files)
        for path in ("/", "/storefront.js", "/storefront.css"):
            with urllib.request.urlopen(self.base + path, timeout=WAIT_SECONDS) as response:
                csp = response.headers.get("Content-Security-Policy", "")
                self.assertIn("script-src 'self'", csp, path)
                self.assertIn("style-src 'self'", csp, path)
                self.assertIn("frame-ancestors 'none'", csp, path)
                self.assertNotIn("unsafe", csp, path)
                self.assertEqual(response.headers.get("X-Content-Type-Options"), "nosniff")
                self.assertEqual(response.headers.get("X-Frame-Options"), "DENY")
                self.assertEqual(response.headers.get("Referrer-Policy"), "no-referrer")
        with urllib.request.urlopen(self.base + "/v1/popular", timeout=WAIT_SECONDS) as response:
            self.assertEqual(response.headers.get("X-Content-Type-Options"), "nosniff")
        # Chromium enforces it: the page works (its own files) but an inline script added to it
        # does not run, and the refusal is logged.
        self.open_customer("u5")
        self.assert_no_page_errors()
        ran = self.driver.execute_script(
            "const s = document.createElement('script');"
            "s.textContent = 'window.__inline_ran = true;';"
            "document.head.append(s); return window.__inline_ran === true;")
        self.assertFalse(ran, "an inline script ran despite the page's CSP")
        logged = []
        self.wait(lambda: logged.extend(e["message"] for e in self.driver.get_log("browser")) or
                  any("Content Security Policy" in m for m in logged),
                  "Chromium logs the refused inline script")


def main():
    global RECLOOP, ARTIFACTS
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    RECLOOP, ARTIFACTS = sys.argv[1], sys.argv[2]
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if not HAVE_SELENIUM:
        missing.append("python3-selenium")
    if missing:
        message = ("storefront_test: needs Debian's chromium, chromium-driver and python3-selenium "
                   f"(`scripts/setup browser`); missing: {', '.join(missing)}")
        if os.environ.get("RECLOOP_REQUIRE_BROWSER") == "1":
            print(message, file=sys.stderr)
            return 1
        print(message + " -- skipped", file=sys.stderr)
        return 77
    result = unittest.main(argv=[sys.argv[0], "-v"], exit=False).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
