"""Edge states of the storefront in a real browser: each has a clear, kind message; keyboard, contrast, phone."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# WCAG 2.x contrast of every visible text node's colour against the first opaque background behind it.
CONTRAST = r"""
() => {
  const rgb = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number); return { r, g, b, a }; };
  const lum = ({ r, g, b }) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bgOf = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0.5) return c; } return { r: 255, g: 255, b: 255 }; };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || !el || !el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) continue;
    if (el.closest("[aria-hidden=true]")) continue;
    const st = getComputedStyle(el), fg = rgb(st.color), bg = bgOf(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) bad.push(`${node.textContent.trim().slice(0, 40)}: ${ratio.toFixed(2)} < ${need}`);
  }
  return bad;
}
"""

OVERFLOW = r"""
() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.querySelectorAll("body *")) {
    if (!el.checkVisibility() || el.closest(".skip")) continue;
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > width + 0.5 || r.left < -0.5)) wide.push(`${el.tagName.toLowerCase()}.${el.className}: ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return { scrollWidth: document.documentElement.scrollWidth, width, wide: wide.slice(0, 10) };
}
"""


def test_refused_as_a_bot_shows_the_kind_message_and_can_try_again(stack, shoppers):
    drop = stack.create_drop("bot-refused")
    shopper = shoppers("suspect")
    page = shopper.page

    def forged(route):  # a solver that does not solve what the server signed: the server refuses it for real
        real = route.fetch()
        challenge = real.json()
        challenge["salt"] += "forged."
        route.fulfill(response=real, json=challenge)

    page.route("**/api/pow/challenge*", forged)
    shopper.open(drop["drop_id"]).state("registration-open")
    with page.expect_response(lambda r: r.url.endswith("/register")) as refused:
        page.get_by_test_id("register-button").click()
    assert refused.value.status == 403 and refused.value.json()["error"] == "bot_suspected"
    shopper.state("bot")
    panel = page.get_by_test_id("panel-bot")
    expect(panel).to_contain_text("We couldn't verify this browser.")
    expect(panel).to_contain_text("It's not a judgement on you.")
    expect(page.get_by_test_id("status-message")).to_have_text(
        "We couldn't verify this browser, so your entry wasn't recorded.")
    assert stack.participants(drop["drop_id"])["total"] == 0
    shopper.shot("bot")

    page.unroute("**/api/pow/challenge*")
    page.get_by_test_id("retry-button").click()
    shopper.state("registration-open")
    expect(page.get_by_test_id("status-message")).to_have_text("Registration form restored. You can try again.")
    page.get_by_test_id("register-button").click()
    shopper.state("registered")
    assert stack.participants(drop["drop_id"])["total"] == 1


def test_a_registration_whose_reply_is_lost_is_retried_and_lands_once(stack, shoppers):
    """The server records the entry but the reply never arrives: the page resends the same request
    (same Idempotency-Key) and shows the entry that landed, not "already registered"."""
    drop = stack.create_drop("lost-reply")
    shopper = shoppers("unlucky")
    page = shopper.page
    sent: list[dict] = []

    def lose_first_reply(route):
        sent.append({"key": route.request.headers.get("idempotency-key"), "body": route.request.post_data_json})
        if len(sent) == 1:
            real = route.fetch()  # the server handles it...
            assert real.status == 201
            route.abort("connectionreset")  # ...and the browser never hears back
        else:
            route.continue_()

    page.route("**/api/drop/*/register", lose_first_reply)
    shopper.open(drop["drop_id"])
    shopper.register(tickets=2)
    assert len(sent) == 2 and sent[0]["key"] and sent[0]["key"] == sent[1]["key"]
    assert sent[0]["body"] == sent[1]["body"]
    expect(page.get_by_test_id("status-message")).to_contain_text("You're in the draw with 2 tickets")
    summary = stack.participants(drop["drop_id"])
    assert summary["total"] == 1
    shopper.shot("registered-after-lost-reply")


def test_drop_not_started_counts_down_then_opens_by_itself(stack, shoppers):
    drop = stack.create_drop("not-started", opens_in_s=4, open_s=60)
    shopper = shoppers("early")
    page = shopper.open(drop["drop_id"]).page
    shopper.state("scheduled")
    expect(page.get_by_test_id("panel-scheduled")).to_contain_text("Registration opens soon.")
    expect(page.get_by_test_id("panel-scheduled")).to_contain_text("opening a minute late costs you nothing")
    expect(page.get_by_test_id("phase")).to_have_text("Opening soon")
    expect(page.get_by_test_id("countdown-label")).to_have_text("Registration opens in")
    expect(page.get_by_test_id("countdown")).to_have_attribute("data-target", str(drop["registration_start"]))
    expect(page.get_by_test_id("register-button")).to_be_hidden()
    shopper.shot("scheduled")
    shopper.state("registration-open")
    expect(page.get_by_test_id("status-message")).to_have_text(
        "Registration is open. Choose your tickets to enter the draw.")
    expect(page.get_by_test_id("countdown-label")).to_have_text("Registration closes in")
    shopper.shot("opened")


def test_missed_registration_is_worded_by_phase(stack, shoppers):
    drop = stack.create_drop("missed-phases", inventory=2, purchase_window=3)
    visitor = shoppers("latecomer")
    page = visitor.open(drop["drop_id"]).page
    visitor.state("registration-open")
    stack.close_registration(drop["drop_id"])  # nobody entered; the drop runs its course anyway
    title, lede = page.get_by_test_id("missed-title"), page.get_by_test_id("missed-lede")
    for phase, heading, words in [
        ("LOTTERY", "Registration has closed.", "The lottery is running now"),
        ("PURCHASE", "Registration has closed.", "Winners are buying now"),
        ("COMPLETED", "This drop has ended.", "every round is finished"),
    ]:
        expect(title).to_have_attribute("data-phase", phase, timeout=30_000)
        visitor.state("missed")
        expect(title).to_have_text(heading)
        expect(lede).to_contain_text(words)
        expect(lede).to_contain_text("fresh start")
        visitor.shot(f"missed-{phase.lower()}")
    expect(page.get_by_test_id("status-message")).to_have_text("Registration for this drop has closed.")


def test_unknown_drop_says_so_instead_of_blaming_the_connection(stack, shoppers):
    shopper = shoppers("lost-link")
    page = shopper.open("no-such-drop").page
    shopper.state("not-found")
    expect(page.get_by_test_id("panel-not-found")).to_contain_text("We can't find this drop.")
    expect(page.get_by_test_id("panel-not-found")).to_contain_text("Nothing is wrong with your connection.")
    expect(page.get_by_test_id("product-title")).to_have_text("Drop not found")
    expect(page.get_by_test_id("panel-error")).to_be_hidden()
    expect(page.get_by_test_id("connection")).to_be_hidden()  # no "reconnecting…" for a drop that isn't there
    shopper.shot("not-found")


def test_keyboard_only_shopper_with_visible_focus_and_contrast(stack, shoppers):
    drop = stack.create_drop("keyboard", inventory=1, ticket_price_unit=2)
    shopper = shoppers("keys")
    page = shopper.open(drop["drop_id"]).page
    shopper.state("registration-open")
    assert page.evaluate(CONTRAST) == []

    focused = lambda: page.evaluate("""() => { const e = document.activeElement;
        return { id: e.dataset.testid || e.id || e.tagName.toLowerCase(), text: e.textContent.trim().slice(0, 40),
                 outline: getComputedStyle(e).outlineStyle, visible: e.checkVisibility() && e.getBoundingClientRect().top >= 0 }; }""")
    page.keyboard.press("Tab")
    skip = focused()
    assert skip["text"] == "Skip to the drop" and skip["visible"] and skip["outline"] != "none", skip
    page.keyboard.press("Enter")
    assert focused()["id"] == "drop"
    page.keyboard.press("Tab")
    assert focused()["id"] == "tickets"
    page.keyboard.press("ArrowDown")
    expect(page.get_by_test_id("tickets")).to_have_value("2")
    expect(page.get_by_test_id("price")).to_have_text("$2")
    page.keyboard.press("Tab")
    button = focused()
    assert button["id"] == "register-button" and button["outline"] == "solid", button
    shopper.shot("keyboard-focus")
    page.keyboard.press("Enter")
    shopper.state("registered")
    live = page.get_by_test_id("status-message")
    assert live.get_attribute("aria-live") == "polite" and live.get_attribute("role") == "status"
    expect(live).to_have_text("You're in the draw with 2 tickets.")
    assert page.evaluate("document.activeElement.closest('[data-panel]')?.dataset.panel") == "registered", \
        "focus stays in the page when the form is replaced"

    stack.close_registration(drop["drop_id"])
    shopper.state("won")
    assert page.evaluate("document.activeElement.closest('[data-panel]')?.dataset.panel") == "won"
    assert page.evaluate(CONTRAST) == []
    page.keyboard.press("Tab")
    assert focused()["id"] == "buy-button"
    page.keyboard.press("Enter")
    shopper.state("purchased")
    expect(page.get_by_test_id("order-id")).to_have_text(re.compile(r"^ord_"))
    assert page.evaluate(CONTRAST) == []
    shopper.shot("keyboard-purchased")


def test_phone_sized_viewport_has_no_horizontal_scroll(stack, shoppers):
    drop = stack.create_drop("phone", inventory=1, name="Anniversary release",
                             product={"title": "Alpha SV Wetterschutzjackenjubiläumsausgabe", "image_url": "/jacket.svg",
                                      "price": 1250})
    phone = shoppers("phone", viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True,
                     device_scale_factor=2)
    page = phone.open(drop["drop_id"]).page
    phone.state("registration-open")
    page.get_by_test_id("tickets").select_option("10")  # the longest price and breakdown
    expect(page.get_by_test_id("price-breakdown")).to_have_text("1 free · 9 paid")

    def fits(what: str) -> None:
        layout = page.evaluate(OVERFLOW)
        assert layout["scrollWidth"] <= 375 and not layout["wide"], f"{what}: {layout}"

    def thumb_sized(testid: str) -> None:  # a full-width, thumb-sized target
        box = page.get_by_test_id(testid).bounding_box()
        assert box["width"] >= 300 and box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= 375, box

    fits("registration-open")
    thumb_sized("register-button")
    phone.shot("registration-open", full_page=True)
    page.get_by_test_id("tickets").select_option("1")
    page.get_by_test_id("register-button").tap()
    phone.state("registered")
    fits("registered")
    stack.close_registration(drop["drop_id"])
    phone.state("won")
    fits("won")
    thumb_sized("buy-button")
    phone.shot("won", full_page=True)


def test_the_loopback_guard_sees_a_request_to_another_host(stack, shoppers):
    """The guard every other test relies on can fail; and the page's CSP refuses off-origin fetches itself."""
    drop = stack.create_drop("guard")
    shopper = shoppers("guard")
    page = shopper.open(drop["drop_id"]).page
    shopper.state("registration-open")
    assert shopper.offsite == []
    refused = page.evaluate("""() => new Promise((done) => {
        document.addEventListener("securitypolicyviolation", (e) => done(e.violatedDirective), { once: true });
        fetch("http://example.com/pixel.gif").catch(() => null);
    })""")
    assert refused == "connect-src"
    with page.expect_request("http://example.com/**"):
        page.evaluate("() => { location.href = 'http://example.com/elsewhere'; }")
    assert shopper.offsite == ["http://example.com/elsewhere"]
    shopper.offsite.clear()  # seen; the fixture's own check would fail this test otherwise
