"""The storefront in Debian's chromium against the embedded stack: whole shopper journeys.

Each test creates its own drop through the operator API and opens the page with ?drop=<id>.
Registration is closed early through POST /api/drop/{id}/lottery (or by its own registration_end)
and the Step Functions workflow draws, promotes and completes by itself.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import POW_DIFFICULTY, WAIT_MS, now_ms, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def _drop_events(shopper, stream: int | None = None) -> list[dict]:
    return [e["data"] for e in shopper.rec()["sse"] if e["type"] == "drop" and (stream is None or e["n"] == stream)]


def _me_events(shopper, stream: int | None = None) -> list[dict]:
    return [e["data"] for e in shopper.rec()["sse"] if e["type"] == "me" and (stream is None or e["n"] == stream)]


def test_full_winning_journey(stack, shoppers):
    drop = stack.create_drop("win-journey", name="Winter drop", inventory=1, ticket_price_unit=5, purchase_window=60,
                             product={"title": "Alpha SV Jacket", "image_url": "/jacket.svg", "price": 800})
    shopper = shoppers("winner")
    page = shopper.open(drop["drop_id"]).page

    shopper.state("registration-open")
    expect(page.get_by_test_id("product-title")).to_have_text("Alpha SV Jacket")
    expect(page.get_by_test_id("product-price")).to_have_text("$800")
    expect(page.get_by_test_id("phase")).to_have_attribute("data-phase", "REGISTRATION")
    expect(page.get_by_test_id("stock")).to_have_text("1 of 1 left")
    expect(page.get_by_test_id("countdown-label")).to_have_text("Registration closes in")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    assert page.evaluate("localStorage.getItem('drop.session')"), "the page keeps its session token"

    # The quadratic price, shown before confirming: 1 free ticket, then unit * n(n+1)(2n+1)/6 for n paid.
    for tickets, cost, text, parts in [(1, 0, "Free", "1 free"), (2, 5, "$5", "1 free · 1 paid"),
                                       (4, 70, "$70", "1 free · 3 paid"), (3, 25, "$25", "1 free · 2 paid")]:
        page.get_by_test_id("tickets").select_option(str(tickets))
        expect(page.get_by_test_id("price")).to_have_attribute("data-cost", str(cost))
        expect(page.get_by_test_id("price")).to_have_text(text)
        expect(page.get_by_test_id("price-breakdown")).to_have_text(parts)
    shopper.shot("registration-open")

    body = shopper.register(tickets=3)
    shopper.shot("registered")

    # Proof of work: solved in a Web Worker, with progress shown while it ran.
    rec = shopper.rec()
    assert any(url.endswith("/pow-worker.js") for url in rec["workers"]), rec["workers"]
    pow_states = [c for c in rec["states"] if c["id"] == "pow-progress"]
    solving = [c for c in pow_states if c["state"] == "solving"]
    assert solving and all(c["shown"] for c in solving), pow_states
    assert all(re.fullmatch(r"[\d,]+ / ~16,384 hashes", c["text"]) for c in solving), solving
    done = [c for c in pow_states if c["state"] == "done"]
    assert done and int(done[-1]["tried"]) == body["pow"]["nonce"] + 1
    assert int(done[-1]["expected"]) == 2 ** POW_DIFFICULTY
    # The posted entry: the untouched challenge, a valid nonce, FingerprintJS's visitor id, interaction signals.
    assert body["tickets"] == 3 and body["pow"]["challenge"]["difficulty"] == POW_DIFFICULTY
    assert re.fullmatch(r"[0-9a-f]{32}", body["fingerprint"]["visitor_id"]), body["fingerprint"]
    assert 0 < body["fingerprint"]["confidence"] <= 1
    assert body["signals"]["interactions"] > 0 and body["signals"]["elapsed_ms"] > 0
    expect(page.get_by_test_id("my-tickets")).to_have_text("Your 3 tickets are")
    (entry,) = stack.participants(drop["drop_id"])["participants"]
    assert entry["tickets"] == 3 and entry["cost"] == 25, "the server recomputed the price the page showed"

    # Registration closes: the phase change arrives over the stream, then the draw's result.
    stack.close_registration(drop["drop_id"])
    shopper.state("lottery")
    expect(page.get_by_test_id("phase")).to_have_attribute("data-phase", "LOTTERY")
    shopper.shot("lottery")
    won = shopper.state("won")
    expect(won).to_have_attribute("data-promoted", "false")
    expect(page.get_by_test_id("won-title")).to_have_text("You won.")
    expect(page.get_by_test_id("status-message")).to_have_text(re.compile("You won!"))
    phases = [d["phase"] for d in _drop_events(shopper)]
    assert "LOTTERY" in phases and "PURCHASE" in phases, phases
    assert "WINNER" in [m["status"] for m in _me_events(shopper)], "the win came over the stream"
    assert shopper.states()[-4:] == ["registration-open", "registered", "lottery", "won"], shopper.states()

    # The deadline: a countdown to this winner's purchase deadline.
    deadline = stack.status(drop["drop_id"])["purchase_deadline"]
    assert deadline and deadline > now_ms()
    expect(page.get_by_test_id("countdown-label")).to_have_text("Time left to buy")
    expect(page.get_by_test_id("countdown")).to_have_attribute("data-target", str(deadline))
    expect(page.get_by_test_id("countdown")).to_have_text(re.compile(r"^0[01]:[0-5]\d$"))
    expect(page.get_by_test_id("countdown")).not_to_have_text("00:00")
    buy = page.get_by_test_id("buy-button")
    expect(buy).to_have_text("Buy now · $800")
    shopper.shot("won")

    # Two clicks in a row: one order.
    buy.dblclick()
    shopper.state("purchased")
    order_id = page.get_by_test_id("order-id").inner_text()
    assert re.fullmatch(r"ord_[0-9a-f]{20}", order_id), order_id
    expect(page.get_by_test_id("status-message")).to_have_text(f"Purchase complete. Order {order_id}.")
    shopper.shot("purchased")
    starts = [u for m, u in shopper.requests if m == "POST" and u.endswith("/purchase/start")]
    buys = [u for m, u in shopper.requests if m == "POST" and u.endswith("/purchase")]
    assert len(starts) == 1 and len(buys) == 1, shopper.requests
    status = stack.status(drop["drop_id"])
    assert status["sold"] == 1 and status["remaining"] == 0
    people = stack.participants(drop["drop_id"])
    assert people["by_status"]["PURCHASED"] == 1 and people["participants"][0]["order_id"] == order_id

    # Coming back later shows the same order, and the drop completes.
    page.reload()
    shopper.state("purchased")
    expect(page.get_by_test_id("order-id")).to_have_text(order_id)
    stack.wait_phase(drop["drop_id"], "COMPLETED")
    expect(page.get_by_test_id("phase")).to_have_attribute("data-phase", "COMPLETED", timeout=WAIT_MS)
    assert stack.status(drop["drop_id"])["sold"] == 1


def test_losing_shopper_sees_the_loss_with_rollover_credits_earned(stack, shoppers):
    drop = stack.create_drop("lose-rollover", inventory=1, ticket_price_unit=1, purchase_window=60)
    # Two devices (different time zone, language and screen: different FingerprintJS visitor ids).
    ana = shoppers("ana", locale="en-US", timezone_id="America/New_York")
    ben = shoppers("ben", locale="en-GB", timezone_id="Europe/Berlin", viewport={"width": 1100, "height": 860})
    ana.open(drop["drop_id"])
    ben.open(drop["drop_id"])
    body_a = ana.register(tickets=3)  # 1 free + 2 paid: 2 credits if never offered a unit
    body_b = ben.register(tickets=2)  # 1 free + 1 paid: 1 credit
    assert body_a["fingerprint"]["visitor_id"] != body_b["fingerprint"]["visitor_id"]

    stack.close_registration(drop["drop_id"])
    stack.wait_phase(drop["drop_id"], "PURCHASE")
    ranked = {p["tickets"]: p for p in stack.participants(drop["drop_id"])["participants"]}
    by_tickets = {3: ana, 2: ben}
    (win_tickets,) = [t for t, p in ranked.items() if p["status"] == "WINNER"]
    (lose_tickets,) = [t for t, p in ranked.items() if p["status"] == "WAITLISTED"]
    winner, loser = by_tickets[win_tickets], by_tickets[lose_tickets]
    winner.name, loser.name = f"winner-{winner.name}", f"loser-{loser.name}"
    credits = lose_tickets - 1  # the paid entries of the shopper who was never offered a unit

    loser.state("waitlisted")
    expect(loser.page.get_by_test_id("waitlist-position")).to_have_attribute("data-position", "1")
    expect(loser.page.get_by_test_id("waitlist-position")).to_have_text("#1")
    loser.shot("waitlisted")
    winner.state("won")
    winner.page.get_by_test_id("buy-button").click()
    winner.state("purchased")
    winner.shot("purchased")

    stack.wait_phase(drop["drop_id"], "COMPLETED")
    loser.state("lost")
    expect(loser.page.get_by_test_id("panel-lost")).to_contain_text("Not this time.")
    earned = loser.page.get_by_test_id("rollover-earned")
    expect(earned).to_be_visible()
    expect(earned).to_have_attribute("data-credits", str(credits))
    expect(earned).to_have_text(f"{credits} rollover credit{'s' if credits != 1 else ''} earned for the next drop")
    expect(loser.page.get_by_test_id("phase")).to_have_attribute("data-phase", "COMPLETED")
    loser.shot("lost-with-rollover")
    assert loser.me(drop["drop_id"])["rollover_balance"] == credits
    assert stack.status(drop["drop_id"])["sold"] == 1

    # Someone arriving now is told it sold out (not "winners are buying now").
    visitor = shoppers("visitor", timezone_id="Asia/Tokyo")
    visitor.open(drop["drop_id"]).state("sold-out")
    expect(visitor.page.get_by_test_id("panel-sold-out")).to_contain_text("Every unit has found its owner.")
    expect(visitor.page.get_by_test_id("stock")).to_have_text("Sold out")
    visitor.shot("sold-out")

    # The next drop spends the credits first: rollover, then the free ticket, then paid ones.
    nxt = stack.create_drop("after-rollover", inventory=3, ticket_price_unit=1)
    loser.open(nxt["drop_id"]).state("registration-open")
    loser.page.get_by_test_id("tickets").select_option(str(credits + 1))
    expect(loser.page.get_by_test_id("rollover-applied")).to_have_text(
        f"{credits} rollover credit{'s' if credits != 1 else ''} applied")
    expect(loser.page.get_by_test_id("price")).to_have_text("Free")
    expect(loser.page.get_by_test_id("price-breakdown")).to_have_text(f"{credits} from rollover · 1 free")
    loser.shot("next-drop-rollover-applied")


def test_winner_who_lets_the_purchase_window_expire_sees_the_expired_message(stack, shoppers):
    drop = stack.create_drop("let-expire", inventory=1, purchase_window=5)
    shopper = shoppers("late")
    shopper.open(drop["drop_id"]).register(tickets=1)
    stack.close_registration(drop["drop_id"])
    shopper.state("won")
    expect(shopper.page.get_by_test_id("countdown-label")).to_have_text("Time left to buy")
    shopper.shot("won")

    shopper.state("expired")
    page = shopper.page
    expect(page.get_by_test_id("panel-expired")).to_contain_text("Your buying window closed.")
    expect(page.get_by_test_id("panel-expired")).to_contain_text("we'd love to see you at the next one")
    expect(page.get_by_test_id("status-message")).to_have_text("Your buying window has closed.")
    expect(page.get_by_test_id("buy-button")).to_be_hidden()
    expect(page.get_by_test_id("countdown-block")).to_be_hidden()
    shopper.shot("expired")
    wait_until(lambda: shopper.me(drop["drop_id"])["status"] == "EXPIRED", "the server to agree: EXPIRED")
    stack.wait_phase(drop["drop_id"], "COMPLETED")
    shopper.state("expired")  # still the kind message once the drop has ended
    assert stack.status(drop["drop_id"])["sold"] == 0


def test_offline_then_back_online_the_page_catches_up_over_a_new_stream(stack, shoppers):
    drop = stack.create_drop("reconnect-offline", inventory=1)
    shopper = shoppers("commuter")
    page = shopper.open(drop["drop_id"]).page
    shopper.register(tickets=1)
    connection = page.get_by_test_id("connection")
    expect(connection).to_have_attribute("data-state", "live")

    shopper.context.set_offline(True)
    expect(connection).to_have_attribute("data-state", "offline")
    expect(connection).to_have_text("offline")
    expect(page.get_by_test_id("status-message")).to_have_text(re.compile("You're offline"))
    shopper.shot("offline")
    streams_before = shopper.rec()["streams"]

    stack.close_registration(drop["drop_id"])  # the draw happens while this shopper is offline
    stack.wait_phase(drop["drop_id"], "PURCHASE")
    page.wait_for_timeout(300)  # let the page process whatever it could (nothing: it is offline)
    expect(page.locator("main")).to_have_attribute("data-state", "registered")

    shopper.context.set_offline(False)
    expect(connection).to_have_attribute("data-state", "live")
    shopper.state("won")
    shopper.shot("back-online-won")
    rec = shopper.rec()
    assert rec["streams"] > streams_before, "a new stream was opened after the network came back"
    newest = rec["streams"]
    assert "PURCHASE" in [d["phase"] for d in _drop_events(shopper, newest)]
    assert "WINNER" in [m["status"] for m in _me_events(shopper, newest)]
    assert shopper.states("connection")[-3:] == ["live", "offline", "live"] or \
        shopper.states("connection")[-4:] == ["live", "offline", "reconnecting", "live"], shopper.states("connection")


def test_stream_ended_by_the_server_and_refused_reconnects_recover_with_a_new_token(stack, shoppers):
    drop = stack.create_drop("reconnect-refused", inventory=1)
    shopper = shoppers("persistent")
    page = shopper.page
    events: list[str] = []
    mode = {"now": "end"}

    def events_route(route):
        events.append(f"{mode['now']}:{route.request.url.split('token=')[1][-12:]}")
        if mode["now"] == "end":  # a stream that opens, tells the browser to retry soon, and ends
            mode["now"] = "refuse"
            route.fulfill(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"},
                          body="retry: 300\n\n: the server ended this stream\n\n")
        elif mode["now"] == "refuse":  # the reconnect is refused: an expired stream token
            route.fulfill(status=401, content_type="application/json",
                          body='{"error": "invalid_token", "message": "The token has expired."}')
        else:
            route.continue_()

    page.route("**/events/**", events_route)
    shopper.open(drop["drop_id"])
    shopper.register(tickets=1)
    connection = page.get_by_test_id("connection")
    expect(connection).to_have_attribute("data-state", "reconnecting")
    stack.close_registration(drop["drop_id"])
    stack.wait_phase(drop["drop_id"], "PURCHASE")
    page.wait_for_timeout(200)
    assert any(e.startswith("refuse:") for e in events), events
    mode["now"] = "pass"
    expect(connection).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    shopper.state("won")
    shopper.shot("recovered-won")

    kinds = [e.split(":")[0] for e in events]
    assert kinds[0] == "end" and "refuse" in kinds and kinds[-1] == "pass", events
    first_token, last_token = events[0].split(":")[1], events[-1].split(":")[1]
    assert last_token != first_token, f"the page fetched a new stream token after the refusal: {events}"
    token_posts = [u for m, u in shopper.requests if m == "POST" and u.endswith("/stream-token")]
    assert len(token_posts) >= 2, token_posts
    newest = shopper.rec()["streams"]
    assert "WINNER" in [m["status"] for m in _me_events(shopper, newest)]
