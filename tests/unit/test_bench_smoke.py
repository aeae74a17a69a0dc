"""The benchmarks' own building blocks: the proposed rank() is the same ranking, the bench moto rolls back
exactly, the helpers measure what they say, and every bench script and the locustfile at least load."""
from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings, strategies as st

from bench._lib import fast_lottery, pct, table
from chalicelib import lottery

ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted((ROOT / "bench").glob("*.py"))


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(1, 100), max_size=80), st.text(max_size=12))
@settings(max_examples=300, deadline=None)
def test_the_proposed_rank_is_the_same_ranking(entries, seed):
    assert fast_lottery.rank(entries, seed) == lottery.rank(entries, seed)


@given(st.dictionaries(st.text(min_size=1, max_size=4), st.integers(1, 100), max_size=120), st.integers(0, 130),
       st.text(max_size=6), st.sampled_from([0, 1, 2, 64]))
@settings(max_examples=300, deadline=None)
def test_the_proposed_top_is_the_head_of_the_same_ranking(entries, k, seed, margin):
    assert fast_lottery.top(entries, k, seed, margin=margin) == lottery.rank(entries, seed)[:k]


def test_the_proposed_rank_is_the_same_on_many_near_keys():
    rnd = random.Random(3)
    entries = {f"{rnd.getrandbits(64):016x}": rnd.choice((1, 2, 10)) for _ in range(20_000)}
    assert fast_lottery.rank(entries, "seed") == lottery.rank(entries, "seed")
    assert fast_lottery.top(entries, 500, "seed") == lottery.rank(entries, "seed")[:500]


@pytest.mark.parametrize("bad", [{"a": 0}, {"a": True}, {"a": 2.0}, {"a": lottery.MAX_TICKETS + 1}])
def test_the_proposed_rank_refuses_what_rank_refuses(bad):
    with pytest.raises(ValueError) as ours:
        lottery.rank(bad, "s")
    with pytest.raises(ValueError) as proposed:
        fast_lottery.rank(bad, "s")
    assert str(ours.value) == str(proposed.value)


def test_the_seed_baseline_ranks_everyone_once_and_is_deterministic():
    sys.path.insert(0, str(ROOT))
    from bench.lottery import make_entries, seed_rank

    entries = make_entries(500, "random")
    ranking = seed_rank(entries, "abc")
    assert sorted(ranking) == sorted(entries) and ranking == seed_rank(entries, "abc") != seed_rank(entries, "abd")


def test_a_cancelled_transaction_on_the_bench_moto_restores_exactly_the_items_it_touched(aws):
    from bench._lib import isolated_moto
    from chalicelib.tables import create_tables
    from devstack.moto_isolation import patches

    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches()]
    isolated_moto.install()
    try:
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(ddb, {"DropsTable": "t"})
        ddb.put_item(TableName="t", Item={"pk": {"S": "A"}, "sk": {"S": "1"}, "n": {"N": "5"}})
        ddb.put_item(TableName="t", Item={"pk": {"S": "C"}, "sk": {"S": "1"}, "n": {"N": "7"}})
        with pytest.raises(ClientError, match="TransactionCanceled"):
            ddb.transact_write_items(TransactItems=[
                {"Update": {"TableName": "t", "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}},
                            "UpdateExpression": "SET n = n - :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "B"}, "sk": {"S": "1"}}}},
                {"Update": {"TableName": "t", "Key": {"pk": {"S": "C"}, "sk": {"S": "1"}},
                            "UpdateExpression": "SET n = :z", "ConditionExpression": "n > :big",
                            "ExpressionAttributeValues": {":z": {"N": "0"}, ":big": {"N": "100"}}}},
            ])
        items = {i["pk"]["S"]: i.get("n", {}).get("N") for i in ddb.scan(TableName="t")["Items"]}
        assert items == {"A": "5", "C": "7"}
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}},
                        "UpdateExpression": "SET n = n - :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "B"}, "sk": {"S": "1"}}}},
        ])
        items = {i["pk"]["S"]: i.get("n", {}).get("N") for i in ddb.scan(TableName="t")["Items"]}
        assert items == {"A": "4", "B": None, "C": "7"}
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def test_percentiles_and_tables():
    assert pct([], 0.5) != pct([], 0.5)  # nan
    assert pct([3, 1, 2], 0.5) == 2 and pct(list(range(101)), 0.95) == 95
    text = table([{"a": "x", "b": 1234.5}, {"a": "yy", "b": 0.5}], ["a", "b"])
    assert text.splitlines()[0].split() == ["a", "b"]
    assert "1,234" in text or "1,235" in text  # rounding of .5


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.name)
def test_every_bench_script_is_a_program_with_a_main_and_a_docstring(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.name} needs a docstring saying what it measures"
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
    assert "__main__" in path.read_text()


def test_bench_helpers_are_not_picked_up_by_make_bench():
    assert not [p for p in BENCHES if p.name.startswith("_")]
    assert not (ROOT / "bench" / "requests.py").exists(), "bench/requests.py would shadow the requests package"


@pytest.mark.parametrize("scenario", ["spike", "breakpoint", "sse", "purchase", "soak"])
def test_the_locustfile_loads_each_scenario_with_one_user_class(scenario):
    code = (f"import os, sys; os.environ['LOAD_SCENARIO'] = {scenario!r}; sys.path.insert(0, 'bench/locust');"
            "import locustfile as f; from locust import User;"
            "users = [c for c in vars(f).values() if isinstance(c, type) and issubclass(c, User) and not c.abstract];"
            "print(len(users))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_the_lottery_bench_runs_small():
    out = subprocess.run([sys.executable, "bench/lottery.py", "--shoppers", "3000", "--winners", "10", "--repeat", "1",
                          "--skip-memory"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "speedup" in out.stdout and "ours (chalicelib.lottery.rank)" in out.stdout
