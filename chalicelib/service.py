"""Use cases: each a method over injected ports (store, signer, settings, clock)."""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from chalicelib import audit, fairness, lottery, pow as pow_
from chalicelib.config import Settings
from chalicelib.domain import pricing
from chalicelib.domain.drop import Drop, Participant, Phase, Product, Status, Step, never_won, standing
from chalicelib.domain.errors import (
    AlreadyRegistered,
    DropNotFound,
    Forbidden,
    InvalidInput,
    InvalidPhase,
    NotAWinner,
    NotRegistered,
    PurchaseExpired,
    RegistrationClosed,
    RegistrationNotOpen,
    SoldOut,
    TokenExpired,
)
from chalicelib.store import DropStore
from chalicelib.tokens import Signer, new_shopper_id

log = logging.getLogger("drops.service")
DROP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DROP_CACHE_MS = 1000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class DropService:
    store: DropStore
    signer: Signer
    settings: Settings
    clock: Callable[[], int] = now_ms
    # starts the drop's Step Functions execution: (drop_id, execution name or None = drop_id)
    start_workflow: Callable[[str, str | None], None] | None = None
    _cache: dict[str, tuple[int, Drop]] = field(default_factory=dict)

    # -- reading ----------------------------------------------------------------
    def drop(self, drop_id: str, *, fresh: bool = False) -> Drop:
        """The drop, from a 1 s in-process cache unless fresh (registration costs no read)."""
        now = self.clock()
        hit = self._cache.get(drop_id)
        if hit and not fresh and now - hit[0] < DROP_CACHE_MS:
            return hit[1]
        drop = self.store.get_drop(drop_id, consistent=fresh) if DROP_ID.match(drop_id or "") else None
        if drop is None:
            raise DropNotFound(f"No drop {drop_id!r}.")
        self._cache[drop_id] = (now, drop)
        return drop

    def status(self, drop_id: str) -> dict:
        drop = self.drop(drop_id)
        return drop_view(drop, self.clock())

    def me(self, drop_id: str, shopper_id: str) -> dict:
        drop = self.drop(drop_id)
        participant = self.store.get_participant(drop_id, shopper_id)
        if participant is not None and participant.rank is not None and not drop.rounds:
            drop = self.drop(drop_id, fresh=True)  # ranked, but the cached drop predates the draw
        balance = self.store.rollover_balance(shopper_id)
        view = shopper_view(drop, participant, self.clock(), balance)
        proof = audit.inclusion(self.store, drop, participant) if drop.phase in audit.DRAWN_PHASES else None
        if proof:  # after the draw: the shopper's pseudonym and Merkle inclusion proof
            view.update(pseudonym=proof["pseudonym"], inclusion_proof=proof)
        return view

    # -- identity ---------------------------------------------------------------
    def new_session(self) -> dict:
        shopper_id = new_shopper_id()
        ttl = self.settings.session_ttl_s
        token = self.signer.issue("shopper", {"sub": shopper_id}, ttl_s=ttl)
        return {"token": token, "shopper_id": shopper_id, "expires_at": (int(time.time()) + ttl) * 1000}

    def shopper(self, bearer: str | None) -> str:
        return self.signer.verify("shopper", bearer)["sub"]

    def check_operator(self, key: str | None) -> None:
        import hmac

        if not key or not hmac.compare_digest(key.encode(), self.settings.operator_key.encode()):
            raise Forbidden("The operator key is missing or wrong.")

    def stream_token(self, drop_id: str, shopper_id: str) -> dict:
        self.drop(drop_id)
        ttl = self.settings.stream_token_ttl_s
        token = self.signer.issue("stream", {"sub": shopper_id, "drop": drop_id}, ttl_s=ttl)
        return {"token": token, "expires_at": self.clock() + ttl * 1000}

    # -- operator -----------------------------------------------------------------
    def create_drop(self, spec: dict) -> dict:
        drop_id = spec.get("drop_id") or "drop-" + secrets.token_hex(4)
        if not DROP_ID.match(drop_id):
            raise InvalidInput("drop_id must be lowercase letters, digits and dashes (max 63).")
        now = self.clock()
        product = spec["product"]
        secret = secrets.token_hex(32)
        drop = Drop(
            drop_id=drop_id, name=spec["name"], product=Product(product["title"], product["image_url"], product["price"]),
            inventory=spec["inventory"], registration_start=spec["registration_start"],
            registration_end=spec["registration_end"], purchase_window=spec["purchase_window"],
            ticket_price_unit=spec.get("ticket_price_unit", 1), max_tickets=spec.get("max_tickets", 10),
            rollover_cap=spec.get("rollover_cap", 10), max_rounds=spec.get("max_rounds", 3),
            commitment=fairness.commitment(secret), created_at=now,
        )
        if drop.registration_end <= drop.registration_start:
            raise InvalidInput("registration_end must be after registration_start.")
        self.store.create_drop(drop, secret)
        if self.start_workflow:
            self.start_workflow(drop_id, None)
        log.info("drop created", extra={"drop_id": drop_id})
        return drop_view(drop, now)

    def list_drops(self) -> list[dict]:
        now = self.clock()
        return [{**drop_view(d, now), "failure": d.failure or None} for d in self.store.list_drops()]

    def lottery_now(self, drop_id: str) -> dict:
        """Close registration now; the workflow notices within its poll interval."""
        drop = self.drop(drop_id, fresh=True)
        closed = self.store.close_registration(drop_id, self.clock())
        if closed is None and drop.phase in (Phase.SCHEDULED, Phase.REGISTRATION) and drop.registration_end > self.clock():
            raise InvalidPhase("Registration could not be closed.")
        self._cache.pop(drop_id, None)
        return drop_view(closed or drop, self.clock())

    def reset_drop(self, drop_id: str) -> dict:
        return {"drop_id": drop_id, "deleted": self.store.delete_drop(drop_id)}

    # -- registration ---------------------------------------------------------------
    def register(self, drop_id: str, shopper_id: str, *, tickets: int, rollover: int | None,
                 trust: dict | None = None, device: str = "", idempotency_key: str = "") -> dict:
        """Enter the lottery: one conditional write, no read.

        With an idempotency key, a retry of a registration that already landed (its reply was
        lost) returns the same entry, marked "replayed": True, instead of 409 already_registered,
        even after the close.
        """
        drop = self.drop(drop_id)
        now = self.clock()
        request_id = request_digest(idempotency_key)
        phase = drop.effective_phase(now)
        if phase is not Phase.REGISTRATION:
            landed = self.store.get_participant(drop_id, shopper_id, consistent=True) if request_id else None
            if landed and landed.request_id == request_id and landed.tickets == tickets:  # a late retry
                return {**shopper_view(drop, landed, now, None), "replayed": True}
            if phase is Phase.SCHEDULED:
                raise RegistrationNotOpen("Registration has not opened yet.")
            raise RegistrationClosed("Registration is closed.")
        if not 1 <= tickets <= drop.max_tickets:
            raise InvalidInput(f"tickets must be between 1 and {drop.max_tickets}.")
        if rollover is None:  # the client did not say: spend what the shopper has (one extra read)
            rollover = self.store.rollover_balance(shopper_id, consistent=True)
        spend = pricing.breakdown(tickets, rollover, drop.ticket_price_unit)
        participant = Participant(
            drop_id=drop_id, shopper_id=shopper_id, pseudonym=self.signer.pseudonym(shopper_id),
            tickets=tickets, rollover_used=spend.rollover, free=spend.free, paid=spend.paid, cost=spend.cost,
            registered_at=now, trust=trust or {}, device=device, request_id=request_id,
        )
        stored, replayed = self.store.register(participant, rollover_debit=spend.rollover,
                                               device=device if self.settings.device_limit else "")
        if replayed and stored.tickets != tickets:
            raise AlreadyRegistered("This idempotency key was used for another registration.")
        view = shopper_view(drop, stored, now, None)
        if replayed:
            log.info("registration replayed", extra={"drop_id": drop_id})
            view["replayed"] = True
        return view

    # -- purchase ---------------------------------------------------------------------
    def start_purchase(self, drop_id: str, shopper_id: str) -> dict:
        drop = self.drop(drop_id, fresh=True)
        participant = self.store.get_participant(drop_id, shopper_id)
        if participant is None:
            raise NotRegistered("You are not registered for this drop.")
        now = self.clock()
        st = standing(drop, participant, now)
        if st.status is Status.PURCHASED:
            return {"order": order_view(drop, participant)}
        if st.status is Status.EXPIRED:
            raise PurchaseExpired("Your purchase window has closed.")
        if st.status is not Status.WINNER:
            if drop.remaining <= 0 and drop.phase in (Phase.PURCHASE, Phase.COMPLETED):
                raise SoldOut("Sold out.")
            raise NotAWinner("You have no right to buy right now.")
        token = self.signer.issue("purchase", {"sub": shopper_id, "drop": drop_id, "round": st.round},
                                  exp_ms=st.purchase_deadline)
        return {"purchase_token": token, "purchase_deadline": st.purchase_deadline,
                "price": drop.product.price, "server_time": now}

    def purchase(self, drop_id: str, shopper_id: str, purchase_token: str) -> dict:
        """Buy with a purchase token: the token is the idempotency key (a retry returns the same order)."""
        try:
            claims = self.signer.verify("purchase", purchase_token)
        except TokenExpired as exc:
            landed = self._landed_order(drop_id, shopper_id, purchase_token)
            if landed:  # the purchase went through; only its reply was lost before the deadline
                return landed
            raise PurchaseExpired("Your purchase window has closed.") from exc
        if claims.get("sub") != shopper_id or claims.get("drop") != drop_id:
            raise NotAWinner("This purchase token is not yours.")
        drop = self.drop(drop_id, fresh=True)
        rnd = next((r for r in drop.rounds if r.number == claims.get("round")), None)
        if rnd is None:
            raise NotAWinner("This purchase token is not valid.")
        order_id = _order_id(claims, shopper_id)
        participant = self.store.purchase(drop_id, shopper_id, rnd, order_id, self.clock())
        self._cache.pop(drop_id, None)
        return {"order": order_view(drop, participant)}

    def _landed_order(self, drop_id: str, shopper_id: str, purchase_token: str) -> dict | None:
        """The order an expired but genuine purchase token already made (one read), else None."""
        claims = self.signer.verify("purchase", purchase_token, allow_expired=True)
        if claims.get("sub") != shopper_id or claims.get("drop") != drop_id or not isinstance(claims.get("jti"), str):
            return None
        participant = self.store.get_participant(drop_id, shopper_id, consistent=True)
        if participant is None or participant.order_id != _order_id(claims, shopper_id):
            return None
        return {"order": order_view(self.drop(drop_id), participant)}

    # -- workflow steps (Step Functions tasks) ------------------------------------------
    def tick(self, drop_id: str) -> dict:
        drop = self.drop(drop_id, fresh=True)
        now = self.clock()
        if drop.phase is Phase.SCHEDULED and now >= drop.registration_start:
            drop = self.store.set_phase(drop_id, (Phase.SCHEDULED,), Phase.REGISTRATION) or self.drop(drop_id, fresh=True)
        if drop.phase is Phase.REGISTRATION and now - drop.counted_at >= self.settings.count_every_ms:
            # a COUNT reads every entry: at most once per count_every_ms, not on every poll
            self.store.set_registered(drop_id, self.store.count_participants(drop_id), now)
        step, wake = drop.next_step(now, grace_ms=self.settings.registration_grace_ms, poll_ms=self.settings.poll_ms)
        return {"drop_id": drop_id, "next": step.value, "wake_at": iso(wake), "phase": drop.phase.value}

    def run_lottery(self, drop_id: str) -> dict:
        """Freeze entries, rank them, write ranks, open round 1. Safe to run again."""
        drop = self.drop(drop_id, fresh=True)
        if drop.phase in (Phase.SCHEDULED, Phase.REGISTRATION):
            if self.clock() < drop.registration_end + self.settings.registration_grace_ms:
                raise InvalidPhase("Registration is still open.")
            drop = self.store.set_phase(drop_id, (Phase.SCHEDULED, Phase.REGISTRATION), Phase.LOTTERY) or self.drop(drop_id, fresh=True)
        if drop.phase is not Phase.LOTTERY:
            return {"drop_id": drop_id, "phase": drop.phase.value, "ran": False}
        participants = list(self.store.participants(drop_id))
        entries = {p.pseudonym: p.tickets for p in participants}
        levels = fairness.merkle_levels(entries.items())  # leaves in pseudonym order
        root = fairness.root_of(levels)
        audit.freeze(self.store, drop, entries, root)  # the root is public before the beacon is known
        beacon = audit.beacon_for_draw(self.store, drop)
        secret = self.store.get_secret(drop_id)
        result = draw_result(secret, entries, beacon, root=root)
        position = {pseudonym: i for i, pseudonym in enumerate(result["ranking"])}
        leaf = {pseudonym: i for i, pseudonym in enumerate(sorted(entries))}
        self.store.save_ranks(replace(p, rank=position[p.pseudonym], proof=fairness.encode_path(levels, leaf[p.pseudonym]))
                              for p in participants)
        first = drop.first_round(len(participants), self.clock())
        audit.publish(self.store, self.settings.audit_bucket, drop, secret, entries, result, first.end, beacon, self.clock())
        self.store.begin_purchase(drop_id, first, len(participants), len(participants))
        log.info("lottery ran", extra={"drop_id": drop_id, "entries": len(participants), "root": result["root"]})
        return {"drop_id": drop_id, "phase": Phase.PURCHASE.value, "ran": True, "winners": first.end}

    def audit(self, drop_id: str) -> dict:
        """The public audit of a drawn drop (LotteryPending before the draw)."""
        drop = self.drop(drop_id)
        if drop.phase not in audit.DRAWN_PHASES:  # the cache may predate the draw
            drop = self.drop(drop_id, fresh=True)
        return audit.audit_view(self.store, drop)

    def inclusion_proof(self, drop_id: str, shopper_id: str) -> dict | None:
        """The shopper's pseudonym and Merkle proof once the lottery ran; None before or if not registered."""
        return self.me(drop_id, shopper_id).get("inclusion_proof")

    def promote(self, drop_id: str) -> dict:
        drop = self.drop(drop_id, fresh=True)
        if drop.phase is not Phase.PURCHASE or not drop.can_promote() or self.clock() < drop.current_round.deadline:
            return {"drop_id": drop_id, "promoted": 0}
        rnd = drop.promotion_round(self.clock())
        self.store.add_round(drop_id, rnd)
        return {"drop_id": drop_id, "promoted": rnd.end - rnd.start, "round": rnd.number}

    def complete(self, drop_id: str) -> dict:
        """Convert rollover credits (once per shopper) and mark the drop COMPLETED."""
        drop = self.drop(drop_id, fresh=True)
        if drop.phase is Phase.COMPLETED:
            return {"drop_id": drop_id, "credited": 0}
        if drop.phase is not Phase.PURCHASE:
            raise InvalidPhase(f"Cannot complete a drop in {drop.phase.value}.")
        credited = 0
        for p in self.store.participants(drop_id):
            if p.rollover_credited is None and p.credit_eligible and never_won(drop, p):
                credited += self.store.credit_rollover(p, p.credit_eligible, drop.rollover_cap)
        self.store.set_phase(drop_id, (Phase.PURCHASE,), Phase.COMPLETED)
        return {"drop_id": drop_id, "credited": credited}

    def retry_failed(self, drop_id: str) -> dict:
        """Operator: put a FAILED drop back where its workflow stopped and start a new execution.

        Every step is idempotent and reads absolute times from the drop, so the new execution
        converges to what an undisturbed run would have produced.
        """
        drop = self.drop(drop_id, fresh=True)
        if drop.phase is not Phase.FAILED:
            raise InvalidPhase(f"Only a FAILED drop can be retried; this one is {drop.phase.value}.")
        resumed = self.store.set_phase(drop_id, (Phase.FAILED,), drop.resume_phase(self.clock()))
        if resumed is None:
            raise InvalidPhase("The drop changed while it was being retried.")
        self._cache.pop(drop_id, None)
        name = f"{drop_id}-r{self.clock()}"  # a new name: the failed execution keeps its own
        if self.start_workflow:
            self.start_workflow(drop_id, name)
        log.info("failed drop retried", extra={"drop_id": drop_id, "phase": resumed.phase.value})
        return {**drop_view(resumed, self.clock()), "execution": name if self.start_workflow else None}

    def mark_failed(self, drop_id: str, error: str) -> dict:
        expected = tuple(p for p in Phase if p not in (Phase.COMPLETED, Phase.FAILED))
        self.store.set_phase(drop_id, expected, Phase.FAILED, failure=error[:500])
        return {"drop_id": drop_id, "phase": Phase.FAILED.value}


def _order_id(claims: dict, shopper_id: str) -> str:
    """The order a purchase token makes: the same token always makes the same order."""
    return "ord_" + hashlib.sha256(str(claims["jti"]).encode() + shopper_id.encode()).hexdigest()[:20]


def request_digest(idempotency_key: str) -> str:
    """What a participant stores of its registration's Idempotency-Key ("" for none)."""
    return hashlib.sha256(b"idem|" + idempotency_key.encode()).hexdigest()[:32] if idempotency_key else ""


def draw_result(secret: str, entries: dict[str, int], beacon: dict | None = None, *, root: str | None = None) -> dict:
    """Root of the frozen entries, seed = H(secret, root, beacon) and the full ranking."""
    root = root or fairness.merkle_root(entries.items())
    seed = fairness.draw_seed(secret, root, fairness.beacon_material(beacon))
    return {"root": root, "seed": seed, "ranking": lottery.rank(entries, seed)}


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def drop_view(drop: Drop, now: int) -> dict:
    rnd = drop.current_round
    return {
        "drop_id": drop.drop_id, "name": drop.name,
        "product": {"title": drop.product.title, "image_url": drop.product.image_url, "price": drop.product.price},
        "inventory": drop.inventory, "remaining": drop.remaining, "sold": drop.sold,
        "phase": drop.effective_phase(now).value,
        "registration_start": drop.registration_start, "registration_end": drop.registration_end,
        "purchase_window": drop.purchase_window,
        "purchase_deadline": rnd.deadline if rnd and drop.phase is Phase.PURCHASE else None,
        "round": rnd.number if rnd else 0, "max_rounds": drop.max_rounds,
        "registered": drop.registered, "max_tickets": drop.max_tickets,
        "ticket_price_unit": drop.ticket_price_unit, "rollover_cap": drop.rollover_cap,
        "commitment": drop.commitment, "server_time": now,
    }


def shopper_view(drop: Drop, p: Participant | None, now: int, balance: int | None) -> dict:
    st = standing(drop, p, now)
    view = {
        "drop_id": drop.drop_id, "status": st.status.value, "position": st.position,
        "purchase_deadline": st.purchase_deadline, "rollover_earned": st.rollover_earned, "server_time": now,
        "tickets": p.tickets if p else 0, "cost": p.cost if p else 0,
        "rollover_used": p.rollover_used if p else 0, "order_id": p.order_id if p else "",
    }
    if p:
        view["shopper_id"] = p.shopper_id
    if balance is not None:
        view["rollover_balance"] = balance
    return view


def order_view(drop: Drop, p: Participant) -> dict:
    return {"order_id": p.order_id, "drop_id": drop.drop_id, "price": drop.product.price,
            "purchased_at": p.purchased_at, "product": drop.product.title}
