"""Check a drop's lottery without trusting the operator. Python 3.9+ standard library only.

    python verify_drop.py --audit audit.json [--entries entries.json] [--pseudonym X --proof proof.json]
    python verify_drop.py --url https://HOST/api/drop/DROP_ID [--token SHOPPER_TOKEN]

The draw is recomputed with the server's own code: lottery.py and fairness.py are
loaded from this file's folder (download them beside it) or, in a checkout of the
repository, from ../chalicelib/. There is no second copy of the algorithm.
Exit status: 0 when every check passes, 1 with the first failure otherwise.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
SEARCH = (HERE, HERE.parent / "chalicelib")
DRAND_URL = "https://api.drand.sh"
DRAND_CHAIN_HASH = {"drand-quicknet": "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971"}


class Failed(Exception):
    """A check did not hold."""


def load(name: str) -> ModuleType:
    """lottery or fairness from beside this file, else from the repository's chalicelib/."""
    for folder in SEARCH:
        path = folder / f"{name}.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"_drop_verify_{name}", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit(f"{name}.py not found beside verify_drop.py nor in ../chalicelib/: download it (see README.md)")


lottery = load("lottery")
fairness = load("fairness")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def verify(audit: dict, entries: list, *, pseudonym: str | None = None, proof: dict | None = None,
           commitment: str | None = None, say: Callable[[str], None] = print) -> dict:
    """Run every check; raise Failed on the first that does not hold. Returns a summary."""
    secret, root, seed = audit["secret"], audit["root"], audit["seed"]
    if commitment is not None:
        check(audit["commitment"] == commitment.lower(),
              f"the audit's commitment {audit['commitment']} is not the one you saw ({commitment})")
    check(fairness.commitment(secret) == audit["commitment"],
          "sha256(secret) does not equal the commitment published at creation: the secret was changed")
    say(f"ok  commitment = sha256(secret) = {audit['commitment']}")

    table: dict[str, int] = {}
    for row in entries:
        check(isinstance(row, list) and len(row) == 2 and isinstance(row[0], str) and type(row[1]) is int and row[1] >= 1,
              f"malformed entry {row!r}")
        check(row[0] not in table, f"pseudonym {row[0]} appears twice in the entry list")
        table[row[0]] = row[1]
    check(len(table) == audit["entries_count"], f"{len(table)} entries listed, the audit says {audit['entries_count']}")
    check(fairness.merkle_root(table.items()) == root, "the Merkle root of the entry list does not equal the published root")
    say(f"ok  {len(table)} entries ({sum(table.values())} tickets) hash to root {root}")

    beacon = audit.get("beacon")
    if beacon:
        due = fairness.beacon_round_time(beacon["source"], int(beacon["round"]))
        if due is not None:
            check(due * 1000 > audit["frozen_at"],
                  f"{beacon['source']} round {beacon['round']} was public before the entries froze")
            say(f"ok  beacon {beacon['source']} round {beacon['round']} published at {due}, after entries froze")
        else:
            say(f"??  beacon source {beacon['source']!r} unknown: check by hand that it was published after entries froze")
    else:
        say("!!  no public beacon: the operator knew the seed once entries froze (see docs/FAIRNESS.md)")
    check(fairness.draw_seed(secret, root, fairness.beacon_material(beacon)) == seed,
          "seed != H(secret, root, beacon): the seed was not derived from the committed values")
    say(f"ok  seed = H(secret, root, beacon) = {seed}")

    ranking = lottery.rank(table, seed)
    published = list(audit["winners"]) + list(audit["waitlist"])
    check(len(audit["winners"]) == min(audit["inventory"], len(table)),
          f"{len(audit['winners'])} winners published for {audit['inventory']} units and {len(table)} entries")
    if ranking != published:
        first = next((i for i, (a, b) in enumerate(zip(ranking, published)) if a != b), min(len(ranking), len(published)))
        raise Failed(f"the published ranking differs from the recomputed draw at position {first + 1}")
    say(f"ok  recomputed draw matches: {len(audit['winners'])} winners, {len(audit['waitlist'])} on the waitlist")

    summary = {"ranking": ranking}
    if pseudonym or proof:
        summary.update(verify_proof(audit, table, ranking, pseudonym, proof, say))
    _code_note(audit, say)
    return summary


def verify_proof(audit: dict, table: dict, ranking: list, pseudonym: str | None, proof: dict | None,
                 say: Callable[[str], None]) -> dict:
    """The shopper's own entry: in the published list and, with a proof, in the tree under the root."""
    if proof is not None:
        proof = proof.get("inclusion_proof", proof)
        pseudonym = pseudonym or proof["pseudonym"]
        check(proof["pseudonym"] == pseudonym, "the proof is for another pseudonym")
        check(proof.get("root", audit["root"]) == audit["root"], "the proof is for another root")
        check(fairness.verify_proof(pseudonym, int(proof["tickets"]), proof["path"], audit["root"]),
              "the inclusion proof does not lead to the published root")
        check(table.get(pseudonym) == int(proof["tickets"]), "your entry in the list has different tickets than your proof")
        say(f"ok  your entry ({pseudonym}, {proof['tickets']} tickets) is in the tree ({len(proof['path'])} hashes)")
    check(pseudonym in table, f"pseudonym {pseudonym} is not in the entry list")
    position = ranking.index(pseudonym) + 1
    k = len(audit["winners"])
    say(f"ok  you drew position {position}: " + ("a winner" if position <= k else f"waitlist #{position - k}"))
    return {"position": position}


def _code_note(audit: dict, say: Callable[[str], None]) -> None:
    mine = {m.__name__.rsplit("_", 1)[-1] + ".py": hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest()
            for m in (lottery, fairness)}
    theirs = audit.get("code_sha256") or {}
    if theirs and theirs != mine:
        say("!!  your lottery.py/fairness.py differ from the server's files; the checks above used yours")


# -- input -----------------------------------------------------------------------------------
def fetch_json(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the user names the URL)
        return json.load(response)


def check_drand(beacon: dict, base: str, say: Callable[[str], None]) -> None:
    """Compare the beacon value with the chain's public record (randomness = sha256(signature))."""
    chain = DRAND_CHAIN_HASH.get(beacon["source"])
    check(chain is not None, f"no known drand chain for {beacon['source']!r}")
    public = fetch_json(f"{base.rstrip('/')}/{chain}/public/{int(beacon['round'])}")
    check(public.get("randomness", "").lower() == beacon["value"].lower(), "the beacon value is not drand's randomness")
    check(hashlib.sha256(bytes.fromhex(public["signature"])).hexdigest() == public["randomness"].lower(),
          "drand's randomness is not sha256 of its signature")
    say(f"ok  beacon value equals drand round {beacon['round']} (BLS signature not checked here)")


def _read(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a product drop's lottery from its public audit.")
    parser.add_argument("--audit", help="audit.json (GET /api/drop/ID/audit)")
    parser.add_argument("--entries", help="entries.json: [[pseudonym, tickets], ...] (else from the audit)")
    parser.add_argument("--url", help="https://HOST/api/drop/ID: fetch the audit (and entries) from the API")
    parser.add_argument("--token", help="your shopper token, with --url: fetch your proof from /me")
    parser.add_argument("--pseudonym", help="your pseudonym (shown on /me after the draw)")
    parser.add_argument("--proof", help="proof.json: your /me response or its inclusion_proof")
    parser.add_argument("--commitment", help="the commitment you saw before registering")
    parser.add_argument("--check-drand", action="store_true", help="also compare the beacon with drand (network)")
    parser.add_argument("--drand-url", default=DRAND_URL, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.audit and not args.url:
        parser.error("give --audit FILE or --url URL")
    try:
        if args.url:
            base = args.url.rstrip("/")
            audit = fetch_json(base + "/audit")
            proof = fetch_json(base + "/me", args.token) if args.token else None
        else:
            audit, proof = _read(args.audit), None
        if args.proof:
            proof = _read(args.proof)
        if args.entries:
            entries = _read(args.entries)
        elif audit.get("entries") is not None:
            entries = audit["entries"]
        elif audit.get("entries_url"):
            entries = fetch_json(urllib.parse.urljoin(args.url or "", audit["entries_url"]))
        else:
            raise Failed("no entry list: pass --entries entries.json")
        verify(audit, entries, pseudonym=args.pseudonym, proof=proof, commitment=args.commitment)
        if args.check_drand:
            check(bool(audit.get("beacon")), "this drop names no beacon")
            check_drand(audit["beacon"], args.drand_url, print)
    except Failed as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"FAIL: could not read the audit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("PASS: the draw is exactly what the committed secret, the frozen entries and the beacon give.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
