"""``python -m settings --markdown`` rewrites the docs' settings tables; ``--check`` only
reports (exit 1) the docs that differ from the table."""

from __future__ import annotations

import argparse
import sys

from settings.markdown import stale_documents, write_documents
from settings.table import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m settings", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--markdown", action="store_true",
                        help="write the generated tables into docs/CONFIG.md and docs/FRONTEND.md")
    action.add_argument("--check", action="store_true",
                        help="exit 1 if a generated table is out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_documents()
        for path in stale:
            print(f"{path.relative_to(REPO_ROOT)} is out of date: run python -m settings "
                  "--markdown", file=sys.stderr)
        return 1 if stale else 0
    for path in write_documents():
        print(f"updated {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
