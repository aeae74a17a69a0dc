"""The lottery's public audit record: freeze the entries, take the beacon, publish, serve proofs."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Mapping

from chalicelib import fairness
from chalicelib.domain.drop import Drop, Participant, Phase
from chalicelib.domain.errors import DropError, InvalidInput, InvalidPhase, LotteryError
from chalicelib.store import DropStore

ENTRIES_KEY = "audits/{drop_id}/entries.json"
CODE_FILES = ("lottery.py", "fairness.py")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
SOURCE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
DRAWN_PHASES = (Phase.PURCHASE, Phase.COMPLETED, Phase.FAILED)
_TREES: dict[tuple[str, str], "FrozenEntries"] = {}  # (drop_id, seed) -> tree and ranks; fixed once drawn
_RECORDS: dict[tuple[str, str], dict] = {}  # (drop_id, commitment) -> drawn record


class LotteryPending(DropError):
    """The lottery has not run yet."""

    code = "lottery_pending"
    status = 409


class BeaconPending(DropError):
    """Entries are frozen; the named beacon round has no value yet (the workflow retries)."""

    code = "beacon_pending"
    status = 409


def code_hashes() -> dict[str, str]:
    """SHA-256 of the lottery code the server runs, so a verifier can tell it runs the same files."""
    here = Path(__file__).parent
    return {name: hashlib.sha256((here / name).read_bytes()).hexdigest() for name in CODE_FILES}


# -- beacon --------------------------------------------------------------------------
def beacon_view(store: DropStore, drop: Drop) -> dict:
    """Public before the draw: the commitment, the named beacon round and, once frozen, the root."""
    frozen = store.get_audit(drop.drop_id, drop.commitment) or {}
    beacon = store.get_beacon(drop.drop_id, drop.commitment)
    if beacon and beacon.get("source") in fairness.DRAND_CHAINS:
        beacon["round_time"] = fairness.beacon_round_time(beacon["source"], beacon["round"])
    return {"drop_id": drop.drop_id, "commitment": drop.commitment, "beacon": beacon,
            "root": frozen.get("root"), "entries": frozen.get("entries"), "frozen_at": frozen.get("frozen_at"),
            "registration_end": drop.registration_end}


def put_beacon(store: DropStore, drop: Drop, body: Any, now: int) -> dict:
    """Operator: name the round ({source, round}) while registration is open, or give its value ({value}) after."""
    if not isinstance(body, dict) or not (set(body) <= {"source", "round", "value"}) or not body:
        raise InvalidInput("Send {source, round} to name the beacon, or {value} to record it.")
    if "value" in body:
        return _supply_value(store, drop, body["value"], now)
    source, round_no = body.get("source"), body.get("round")
    if not isinstance(source, str) or not SOURCE.match(source) or type(round_no) is not int or round_no < 1:
        raise InvalidInput("source must be a short lowercase name and round a positive integer.")
    if drop.effective_phase(now) not in (Phase.SCHEDULED, Phase.REGISTRATION):
        raise InvalidPhase("The beacon must be named before registration closes.")
    due = fairness.beacon_round_time(source, round_no)
    if due is not None and due * 1000 <= drop.registration_end:
        raise InvalidInput(f"Round {round_no} of {source} is published before registration closes; pick a later one.")
    if store.name_beacon(drop.drop_id, drop.commitment, source, round_no) is None:
        raise InvalidPhase("Another beacon round is already named for this drop.")
    return beacon_view(store, drop)


def _supply_value(store: DropStore, drop: Drop, value: Any, now: int) -> dict:
    if not isinstance(value, str) or not HEX64.match(value.lower()):
        raise InvalidInput("value must be the round's randomness: 64 hex digits.")
    if drop.effective_phase(now) in (Phase.SCHEDULED, Phase.REGISTRATION):
        raise InvalidPhase("The beacon value is taken only after registration closes.")
    beacon = store.get_beacon(drop.drop_id, drop.commitment)
    if beacon is None:
        raise InvalidPhase("No beacon round is named for this drop.")
    due = fairness.beacon_round_time(beacon["source"], beacon["round"])
    if due is not None and now < due * 1000:
        raise InvalidPhase(f"Round {beacon['round']} is not published until {due} (unix seconds).")
    if store.set_beacon_value(drop.drop_id, drop.commitment, value.lower()) is None:
        raise InvalidPhase("A different value is already recorded for this beacon round.")
    return beacon_view(store, drop)


def beacon_for_draw(store: DropStore, drop: Drop) -> dict | None:
    """The beacon that enters the seed; None when the drop names none. BeaconPending until it has a value."""
    beacon = store.get_beacon(drop.drop_id, drop.commitment)
    if beacon is None:
        return None
    if not beacon.get("value"):
        raise BeaconPending(f"Waiting for {beacon['source']} round {beacon['round']}.")
    return beacon


# -- freeze and publish ----------------------------------------------------------------
def freeze(store: DropStore, drop: Drop, entries: Mapping[str, int], root: str | None = None) -> str:
    """Publish the root of the entry list once; a later run over different entries is refused."""
    root = root or fairness.merkle_root(entries.items())
    stored = store.freeze_audit(drop.drop_id, drop.commitment, root, len(entries), drop.registration_end)
    if stored["root"] != root:
        raise LotteryError("The entries differ from the ones frozen when registration closed.")
    return root


def publish(store: DropStore, bucket: str, drop: Drop, secret: str, entries: Mapping[str, int],
            result: dict, winners: int, beacon: dict | None, now: int) -> dict:
    """Write the entry list (S3 when configured) and the audit record; running twice writes it once."""
    listed = fairness.entry_list(entries)
    url = None
    if bucket:
        url = _s3_put(bucket, ENTRIES_KEY.format(drop_id=drop.drop_id), json.dumps(listed, separators=(",", ":")))
    record = {
        "drop_id": drop.drop_id, "commitment": drop.commitment, "secret": secret, "root": result["root"],
        "beacon": beacon, "seed": result["seed"], "entries_count": len(listed),
        "tickets_total": sum(entries.values()), "inventory": drop.inventory, "winners_count": winners,
        "frozen_at": drop.registration_end, "drawn_at": now, "entries_url": url,
        "algorithm": "chalicelib/lottery.py rank(entries, seed); seed = fairness.draw_seed(secret, root, beacon)",
        "code_sha256": code_hashes(),
    }
    stored = store.save_audit(drop.drop_id, drop.commitment, result["root"], json.dumps(record, sort_keys=True))
    if stored is None or stored.get("state") != "drawn":
        raise LotteryError("The audit record could not be saved.")
    saved = json.loads(stored["record"])
    if saved["seed"] != record["seed"]:
        raise LotteryError("A different draw is already recorded for this drop.")
    return saved


# -- reading -------------------------------------------------------------------------------
class FrozenEntries:
    """The entries and ranks of a drawn drop, with its Merkle tree (cached per process)."""

    def __init__(self, participants: list[Participant]) -> None:
        self.entries = {p.pseudonym: p.tickets for p in participants}
        self.listed = fairness.entry_list(self.entries)
        self.index = {p: i for i, (p, _) in enumerate(self.listed)}
        self.levels = fairness.merkle_levels((p, t) for p, t in self.listed)
        self.root = fairness.root_of(self.levels)
        ranked = sorted((p for p in participants if p.rank is not None), key=lambda p: p.rank)
        self.ranking = [p.pseudonym for p in ranked]


def _frozen(store: DropStore, drop_id: str, record: dict) -> FrozenEntries:
    tree = _TREES.get((drop_id, record["seed"]))
    if tree is None:
        tree = FrozenEntries(list(store.participants(drop_id)))
        if tree.root != record["root"]:
            raise LotteryError("The stored entries do not match the published root.")
        if len(_TREES) > 32:
            _TREES.clear()
        _TREES[(drop_id, record["seed"])] = tree
    return tree


def _drawn(store: DropStore, drop: Drop) -> dict | None:
    """The drawn record; cached per process once drawn (it never changes for this commitment)."""
    if drop.phase not in DRAWN_PHASES:
        return None
    key = (drop.drop_id, drop.commitment)
    if key not in _RECORDS:
        stored = store.get_audit(drop.drop_id, drop.commitment)
        if not stored or stored.get("state") != "drawn":
            return None
        if len(_RECORDS) > 256:
            _RECORDS.clear()
        _RECORDS[key] = json.loads(stored["record"])
    return _RECORDS[key]


def audit_view(store: DropStore, drop: Drop) -> dict:
    """The full audit (after the draw): record, winners and waitlist in rank order, entries or their URL."""
    record = _drawn(store, drop)
    if record is None:
        raise LotteryPending("The lottery has not run yet; the audit is published with the results.")
    tree = _frozen(store, drop.drop_id, record)
    k = record["winners_count"]
    view = {**record, "winners": tree.ranking[:k], "waitlist": tree.ranking[k:]}
    if not record.get("entries_url"):
        view["entries"] = tree.listed
    return view


def inclusion(store: DropStore, drop: Drop, participant: Participant | None) -> dict | None:
    """The shopper's pseudonym and Merkle inclusion proof, once the lottery ran; else None."""
    if participant is None:
        return None
    record = _drawn(store, drop)
    if record is None:
        return None
    if participant.proof:  # written with the rank: no other entry needs reading
        return {"pseudonym": participant.pseudonym, "tickets": participant.tickets, "root": record["root"],
                "path": fairness.decode_path(participant.proof)}
    tree = _frozen(store, drop.drop_id, record)  # entries ranked before proofs were stored
    index = tree.index.get(participant.pseudonym)
    if index is None:
        return None
    return {"pseudonym": participant.pseudonym, "tickets": participant.tickets, "root": record["root"],
            "path": fairness.proof_from_levels(tree.levels, index)}


# -- S3 ------------------------------------------------------------------------------------
def _s3():
    import boto3  # only when an audit bucket is configured

    return boto3.client("s3")


def _s3_put(bucket: str, key: str, body: str) -> str:
    client = _s3()
    client.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/json",
                      CacheControl="public, max-age=31536000, immutable")
    # Same-origin path: CloudFront serves /audits/* from the (private) audit bucket, the devstack
    # gateway does the same; clients resolve it against the URL they read the audit from.
    return f"/{key}"


def read_entries(bucket: str, drop_id: str) -> list[list]:
    """The published entry list from S3 (tests and operators)."""
    body = _s3().get_object(Bucket=bucket, Key=ENTRIES_KEY.format(drop_id=drop_id))["Body"].read()
    return json.loads(body)
