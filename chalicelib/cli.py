"""`drops`: the operator CLI; talks HTTP to any endpoint (make dev, LocalStack or AWS)."""
from __future__ import annotations

import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import httpx
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
WON = "WINNER,PURCHASED,EXPIRED"

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
out = Console()
err = Console(stderr=True)


class CliError(Exception):
    """A failure worth one clear line, not a traceback."""


# -- configuration ---------------------------------------------------------------------
def dev_dir() -> Path:
    """Where `make dev` keeps its secrets and state: $DEVSTACK_DIR, ./.dev, or the checkout's .dev."""
    if os.environ.get("DEVSTACK_DIR"):
        return Path(os.environ["DEVSTACK_DIR"])
    here = Path.cwd() / ".dev"
    return here if here.is_dir() else Path(__file__).resolve().parent.parent / ".dev"


def _env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    pairs = (ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln and not ln.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _dev_state() -> dict:
    import json

    path = dev_dir() / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def parse_duration(text: str) -> int:
    """'90s', '3m', '1.5h', '250ms' or plain seconds -> milliseconds."""
    match = DURATION.match(text or "")
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 3m or 1h")
    return int(float(match.group(1)) * UNITS_S[match.group(2)] * 1000)


class Api:
    """The drop API over HTTP, with the operator key."""

    def __init__(self, endpoint: str, key: str | None) -> None:
        self.endpoint, self.key = endpoint.rstrip("/"), key
        self.http = http_client(self.endpoint, key)

    def call(self, method: str, path: str, **kwargs: Any) -> dict:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach {self.endpoint} ({type(exc).__name__}); is `make dev` running? "
                           "Set --endpoint or DROPS_ENDPOINT.") from exc
        try:
            body = resp.json()
        except ValueError:
            body = {"error": "not_json", "message": resp.text[:200]}
        if resp.status_code == 403 and body.get("error") == "forbidden":
            raise CliError("the operator key was refused: pass --operator-key, set OPERATOR_KEY, "
                           f"or start `make dev` (it writes {dev_dir() / 'secrets.env'}).")
        if resp.status_code >= 400:
            raise CliError(f"{method} {path} -> {resp.status_code} {body.get('error', '')}: {body.get('message', '')}")
        return body


def http_client(endpoint: str, key: str | None) -> httpx.Client:
    headers = {"X-Operator-Key": key} if key else {}
    return httpx.Client(base_url=endpoint, headers=headers, timeout=30)


_state: dict[str, Any] = {}


@app.callback()
def main_options(
    endpoint: str = typer.Option(DEFAULT_ENDPOINT, envvar="DROPS_ENDPOINT", help="API origin."),
    operator_key: Optional[str] = typer.Option(None, envvar="OPERATOR_KEY", show_default=False,
                                               help="Operator key (default: .dev/secrets.env)."),
) -> None:
    _state["endpoint"], _state["key"] = endpoint, operator_key


def api() -> Api:
    key = _state.get("key") or _env_file(dev_dir() / "secrets.env").get("OPERATOR_KEY")
    return Api(_state.get("endpoint", DEFAULT_ENDPOINT), key)


def _sfn(aws_endpoint: str | None) -> Any:
    import boto3

    endpoint = aws_endpoint or os.environ.get("AWS_ENDPOINT_URL") or _dev_state().get("endpoint")
    region = os.environ.get("AWS_DEFAULT_REGION") or _dev_state().get("region") or "us-east-1"
    extra = {"aws_access_key_id": "devstack", "aws_secret_access_key": "devstack"} if _dev_state() and endpoint else {}
    return boto3.client("stepfunctions", endpoint_url=endpoint, region_name=region, **extra)


def _state_machine(arn: str | None) -> str:
    arn = arn or os.environ.get("STATE_MACHINE_ARN") or _dev_state().get("state_machine_arn")
    if not arn:
        raise CliError("no state machine: pass --state-machine, set STATE_MACHINE_ARN, or start `make dev`.")
    return arn


# -- rendering ---------------------------------------------------------------------------
def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    stamp = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = (ms - time.time() * 1000) / 1000
    return f"{stamp} ({'in ' if delta > 0 else ''}{abs(delta):.0f}s{'' if delta > 0 else ' ago'})"


def _drop_table(drop: dict) -> Table:
    table = Table(title=f"drop {drop['drop_id']}", show_header=False)
    for label, value in [
        ("name", drop["name"]), ("product", f"{drop['product']['title']} @ {drop['product']['price']}"),
        ("phase", f"[bold]{drop['phase']}[/bold]"), ("stock", f"{drop['remaining']}/{drop['inventory']} left, {drop['sold']} sold"),
        ("registered", drop["registered"]), ("registration opens", _when(drop["registration_start"])),
        ("registration closes", _when(drop["registration_end"])), ("purchase window", f"{drop['purchase_window']} s"),
        ("round", f"{drop['round']}/{drop['max_rounds']}"), ("purchase deadline", _when(drop.get("purchase_deadline"))),
    ]:
        table.add_row(label, str(value))
    return table


def _histogram(summary: dict) -> Table:
    table = Table(title="bot defence: trust score of every entry", min_width=44,
                  caption=f"{summary['total']} entries, {summary['trust']['unscored']} without a score")
    table.add_column("score")
    table.add_column("entries", justify="right")
    table.add_column("")
    top = max(summary["trust"]["buckets"].values() or [0]) or 1
    for label, count in summary["trust"]["buckets"].items():
        table.add_row(label, str(count), "█" * round(30 * count / top))
    return table


# -- commands -------------------------------------------------------------------------------
@app.command()
def create(
    drop_id: Optional[str] = typer.Argument(None, help="Lowercase id (default: generated)."),
    name: str = typer.Option("Limited drop", help="Drop name."),
    title: str = typer.Option("Alpha SV Jacket", help="Product title."),
    price: int = typer.Option(800, help="Price (whole currency units)."),
    image: str = typer.Option("/jacket.svg", help="Product image URL."),
    inventory: int = typer.Option(5, help="Units for sale."),
    opens_in: str = typer.Option("0s", help="Registration opens after this long (90s, 3m, 1h)."),
    duration: str = typer.Option("3m", help="Registration stays open this long."),
    window: str = typer.Option("120s", help="Each winner's time to buy."),
    max_tickets: int = typer.Option(10, help="Most tickets one shopper may enter."),
    rounds: int = typer.Option(3, help="Purchase rounds (1 + waitlist promotions)."),
) -> None:
    """Schedule a drop; its workflow starts at once."""
    start = int(time.time() * 1000) + parse_duration(opens_in)
    spec = {"name": name, "product": {"title": title, "image_url": image, "price": price}, "inventory": inventory,
            "registration_start": start, "registration_end": start + parse_duration(duration),
            "purchase_window": max(1, parse_duration(window) // 1000), "max_tickets": max_tickets, "max_rounds": rounds}
    if drop_id:
        spec["drop_id"] = drop_id
    out.print(_drop_table(api().call("POST", "/api/drops", json=spec)))


@app.command("list")
def list_() -> None:
    """Every drop, one line each."""
    table = Table("drop", "name", "phase", "stock", "registered", "closes")
    for d in api().call("GET", "/api/drops")["drops"]:
        table.add_row(d["drop_id"], d["name"], d["phase"], f"{d['remaining']}/{d['inventory']}", str(d["registered"]),
                      _when(d["registration_end"]))
    out.print(table)


@app.command()
def status(drop_id: str) -> None:
    """One drop: phase, schedule, stock, round, entries by status."""
    client = api()
    out.print(_drop_table(client.call("GET", f"/api/drop/{drop_id}/status")))
    summary = client.call("GET", f"/api/drop/{drop_id}/participants", params={"limit": 0})
    counts = ", ".join(f"{k} {v}" for k, v in summary["by_status"].items() if v)
    out.print(f"entries by status: {counts or 'none yet'}")
    if summary.get("failure"):
        out.print(f"[red]failed:[/red] {summary['failure']}\n`drops retry {drop_id}` resumes it once the cause is fixed")


@app.command()
def stock(drop_id: str) -> None:
    """Units left and sold."""
    d = api().call("GET", f"/api/drop/{drop_id}/status")
    out.print(f"{d['drop_id']}: {d['remaining']} of {d['inventory']} left, {d['sold']} sold ({d['phase']})")


@app.command()
def lottery(drop_id: str) -> None:
    """Close registration now; the workflow draws within its poll interval."""
    d = api().call("POST", f"/api/drop/{drop_id}/lottery")
    out.print(f"{drop_id}: registration closed; phase {d['phase']}. `drops status {drop_id}` to follow.")


@app.command()
def retry(drop_id: str) -> None:
    """Resume a FAILED drop: back to the phase its data says, with a new workflow execution."""
    d = api().call("POST", f"/api/drop/{drop_id}/retry")
    started = f", execution {d['execution']}" if d.get("execution") else ""
    out.print(f"{drop_id}: resumed in {d['phase']}{started}. `drops executions {drop_id}` to follow.")


@app.command()
def winners(drop_id: str, limit: int = typer.Option(50, help="Rows to show.")) -> None:
    """Winners (with their orders) and the bot-score summary of every entry."""
    summary = api().call("GET", f"/api/drop/{drop_id}/participants", params={"status": WON, "limit": limit})
    table = Table("rank", "pseudonym", "status", "tickets", "trust", "order", title=f"winners of {drop_id}")
    for p in summary["participants"]:
        rank = "-" if p["rank"] is None else str(p["rank"] + 1)
        table.add_row(rank, p["pseudonym"], p["status"], str(p["tickets"]), str(p["trust_score"] if p["trust_score"] is not None else "-"), p["order_id"] or "-")
    out.print(table if summary["participants"] else f"{drop_id}: no winners yet ({summary['phase']})")
    out.print(_histogram(summary))


@app.command()
def executions(
    drop_id: Optional[str] = typer.Argument(None, help="Only this drop's executions."),
    aws_endpoint: Optional[str] = typer.Option(None, help="AWS endpoint (default: AWS_ENDPOINT_URL or make dev's)."),
    state_machine: Optional[str] = typer.Option(None, help="State machine ARN (default: STATE_MACHINE_ARN)."),
) -> None:
    """Step Functions executions and the last events of each."""
    from botocore.exceptions import BotoCoreError, ClientError

    sfn, arn = _sfn(aws_endpoint), _state_machine(state_machine)
    try:
        listed = sfn.list_executions(stateMachineArn=arn, maxResults=100)["executions"]
        table = Table("execution", "status", "started", "state", "events", "last event")
        for ex in listed:
            if drop_id and ex["name"] != drop_id and not ex["name"].startswith(f"{drop_id}-r"):
                continue
            events = _history(sfn, ex["executionArn"])
            entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
            table.add_row(ex["name"], ex["status"], ex["startDate"].strftime("%Y-%m-%d %H:%M:%S"),
                          entered[-1] if entered else "-", str(len(events)), events[-1]["type"] if events else "-")
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"Step Functions: {exc}") from exc
    out.print(table)


def _history(sfn: Any, execution_arn: str) -> list[dict]:
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [event for page in pages for event in page["events"]]


@app.command()
def reconcile(
    aws_endpoint: Optional[str] = typer.Option(None, help="AWS endpoint (default: AWS_ENDPOINT_URL or make dev's)."),
    state_machine: Optional[str] = typer.Option(None, help="State machine ARN (default: STATE_MACHINE_ARN)."),
) -> None:
    """Start a workflow for every unfinished drop that has none running."""
    from botocore.exceptions import BotoCoreError, ClientError

    from devstack.statemachine import reconcile as reconcile_

    drops = api().call("GET", "/api/drops")["drops"]
    try:
        started = reconcile_(_sfn(aws_endpoint), _state_machine(state_machine), drops)
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"Step Functions: {exc}") from exc
    for s in started:
        out.print(f"started {s['name']} for {s['drop_id']}")
    out.print(f"{len(started)} started, {len(drops) - len(started)} already running or finished")


@app.command()
def reset(drop_id: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete one drop and all its entries."""
    if not yes:
        typer.confirm(f"Delete drop {drop_id} and every entry?", abort=True)
    d = api().call("DELETE", f"/api/drop/{drop_id}")
    out.print(f"{drop_id}: {d['deleted']} items deleted")


@app.command("reset-all")
def reset_all(yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete every drop."""
    client = api()
    drops = client.call("GET", "/api/drops")["drops"]
    if drops and not yes:
        typer.confirm(f"Delete all {len(drops)} drops?", abort=True)
    deleted = 0
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("deleting drops", total=len(drops))
        for d in drops:
            deleted += client.call("DELETE", f"/api/drop/{d['drop_id']}")["deleted"]
            progress.advance(task)
    out.print(f"{len(drops)} drops reset ({deleted} items deleted)")


def main() -> None:
    """Console script entry point: usage errors from click, our errors in one line, never a traceback."""
    try:
        app()
    except CliError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
