"""`quanttui doctor`: the report for a bug report (core/doctor.py), as aligned text or `--json`.

The text is cleaned value by value in core (no control character or escape reaches the terminal);
`--json` prints the exact values. A section that could not be collected is an error in its place,
so the command itself succeeds on a machine where llama.cpp, NVML or the network is missing.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..core import doctor


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "doctor", help="llama.cpp build, devices, extra buffers, dirs and Hub access, for a bug report"
    )
    p.add_argument("--json", action="store_true", help="print JSON (exact values)")
    p.add_argument("--no-hub", action="store_true", help="do not check whether the Hub answers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = doctor.report(hub=not args.no_hub)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(doctor.as_text(report))
    return 0
