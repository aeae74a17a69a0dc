"""Copy statemachines/drop.asl.json into infra/template.yaml's DefinitionString (run by `make package`).

    python infra/sync_asl.py            # rewrite the template if the ASL changed
    python infra/sync_asl.py --check    # exit 1 if it is stale
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
ASL = ROOT / "statemachines" / "drop.asl.json"
START = "      DefinitionString:\n        Fn::Sub:\n          - |\n"
INDENT = " " * 14


def synced(template: str, asl: str) -> str:
    """The template text with the block literal after START replaced by the ASL text."""
    head, sep, rest = template.partition(START)
    if not sep:
        raise ValueError("DefinitionString block not found in infra/template.yaml")
    lines = rest.splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith(INDENT))
    block = "".join(f"{INDENT}{line}\n" if line else "\n" for line in asl.rstrip("\n").split("\n"))
    return head + sep + block + "".join(lines[end:])


def main(argv: list[str]) -> int:
    current = TEMPLATE.read_text()
    wanted = synced(current, ASL.read_text())
    if current == wanted:
        return 0
    if "--check" in argv:
        print("infra/template.yaml is stale: run python infra/sync_asl.py", file=sys.stderr)
        return 1
    TEMPLATE.write_text(wanted)
    print("infra/template.yaml: DefinitionString updated from statemachines/drop.asl.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
