"""How long the ``glaneur`` command takes to answer: ``--help`` and ``statements parse`` of a small file.

Both must feel instant (well under a second on an idle machine): the CLI loads SQLAlchemy, the
domain and Prefect only inside the commands that need them. Prints min / median / max wall time of
N runs of the installed console script, each a fresh interpreter as a person's terminal would start.

    .venv/bin/python bench/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GLANEUR = Path(sys.executable).parent / "glaneur"
SAMPLE = ROOT / "tests" / "fixtures" / "statements" / "camt053_v02_single.xml"


def measure(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(GLANEUR), *args], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    print(f"{'command':<42} {'min':>7} {'median':>7} {'max':>7}  (seconds, {runs} runs)")
    for label, args in (
        ("glaneur --help", ["--help"]),
        ("glaneur channel add --help", ["channel", "add", "--help"]),
        (f"glaneur statements parse {SAMPLE.name}", ["statements", "parse", str(SAMPLE)]),
    ):
        times = measure(args, runs)
        print(f"{label:<42} {min(times):7.2f} {statistics.median(times):7.2f} {max(times):7.2f}")


if __name__ == "__main__":
    main()
