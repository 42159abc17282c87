"""The analyst's commands: the allow-list and feedback, on the registry the settings name.

    python analyst_admin.py allowlist list [--expired]
    python analyst_admin.py allowlist add --host 10.0.0.0/24 --reason "backup server"
    python analyst_admin.py allowlist add --source 10.0.0.5 --destination 10.0.0.9 \\
        --service dns --reason "resolver" --expires 2026-12-31T00:00:00Z
    python analyst_admin.py allowlist remove 3
    python analyst_admin.py allowlist apply results.csv [-o out.csv]   (or alerts.ndjson)
    python analyst_admin.py feedback list
    python analyst_admin.py feedback add SHA256 --records 17,42 --verdict false_positive \\
        [--note "nightly backup"]

The same registry the API uses (SQLite in ``ANOMALYZE_DATA_DIR``, or PostgreSQL at
``ANOMALYZE_DATABASE_URL``), so an entry added here applies to the next upload the API scores.
Entries and verdicts are recorded as added by ``cli:<your user name>``.

Exit codes: 0 done, 1 refused (the message says why: a malformed field, a duplicate, an
unknown id or upload), 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from settings import script_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the data folder (default: $ANOMALYZE_DATA_DIR)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL URL (default: $ANOMALYZE_DATABASE_URL)")
    groups = parser.add_subparsers(dest="group", required=True)
    allow = groups.add_parser("allowlist").add_subparsers(dest="command", required=True)
    listing = allow.add_parser("list")
    listing.add_argument("--expired", action="store_true", help="also expired entries")
    add = allow.add_parser("add")
    for name in ("host", "source", "destination", "port", "service"):
        add.add_argument(f"--{name}")
    add.add_argument("--reason", required=True)
    add.add_argument("--expires", dest="expires_at")
    remove = allow.add_parser("remove")
    remove.add_argument("id", type=int)
    apply = allow.add_parser("apply")
    apply.add_argument("file", type=Path, help="a scored CSV or NDJSON alerts")
    apply.add_argument("-o", "--output", type=Path, help="where to write (default: stdout)")
    feedback = groups.add_parser("feedback").add_subparsers(dest="command", required=True)
    feedback.add_parser("list")
    verdict = feedback.add_parser("add")
    verdict.add_argument("sha256")
    verdict.add_argument("--records", required=True,
                         help="comma-separated row numbers (0-based) or Zeek uids")
    verdict.add_argument("--verdict", required=True,
                         choices=("false_positive", "true_positive"))
    verdict.add_argument("--note")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    args = parse_args(argv)

    from utils.allowlist import AllowList, AllowlistError, DuplicateEntry, UnknownEntry
    from utils.allowlist_files import ScoredFileError, reapply
    from utils.backend_errors import BackendUnavailable
    from utils.backends import open_backends
    from utils.feedback import FeedbackError

    who = f"cli:{getpass.getuser()}"
    try:
        backends = open_backends(args.data_dir or config["DATA_DIR"], config["MODEL_DIR"],
                                 database_url=args.database_url or config["DATABASE_URL"])
        registry = backends.registry
        if args.group == "allowlist":
            return _allowlist(args, registry, who, AllowList, reapply)
        return _feedback(args, registry, who)
    except (AllowlistError, FeedbackError) as exc:
        print(f"error: {exc.field}: {exc}", file=sys.stderr)
    except DuplicateEntry as exc:
        print(f"error: {exc}", file=sys.stderr)
    except (UnknownEntry, ScoredFileError, BackendUnavailable, OSError,
            UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    return 1


def _allowlist(args: argparse.Namespace, registry, who: str, allow_list, reapply) -> int:
    from utils.allowlist import parse_entry

    if args.command == "list":
        for entry in registry.allow_entries(include_expired=args.expired):
            fields = " ".join(f"{name}={value}" for name, value in entry.to_dict().items()
                              if name in ("host", "source", "destination", "port", "service")
                              and value is not None)
            print(f"{entry.id}\t{entry.kind}\t{fields}\t{entry.reason}\tby {entry.added_by} "
                  f"at {entry.added_at}" + (f"\tuntil {entry.expires_at}"
                                            if entry.expires_at else ""))
        return 0
    if args.command == "add":
        body = {name: getattr(args, name) for name in
                ("host", "source", "destination", "port", "service", "reason", "expires_at")
                if getattr(args, name) is not None}
        entry = registry.add_allow_entry(parse_entry(body, added_by=who))
        print(f"added entry {entry.id} ({entry.kind})")
        return 0
    if args.command == "remove":
        entry = registry.delete_allow_entry(args.id)
        print(f"removed entry {entry.id} ({entry.kind}: {entry.reason})")
        return 0
    result = reapply(args.file.read_bytes(), allow_list(registry.allow_entries()))
    if args.output is None:
        sys.stdout.write(result.body)
    else:
        args.output.write_text(result.body)
    print(f"{result.flagged} flagged, {result.allowlisted} allow-listed, {result.alerts} "
          f"alerts", file=sys.stderr)
    return 0


def _feedback(args: argparse.Namespace, registry, who: str) -> int:
    from utils.feedback import parse_feedback

    if args.command == "list":
        print(registry.feedback_counts())
        for item in registry.feedback():
            print(f"{item.id}\t{item.sha256[:16]}\t{item.record}\t{item.verdict}\t"
                  f"{item.analyst}\t{item.created_at}\t{item.trained_version or 'waiting'}")
        return 0
    records = [int(r) if r.strip().isdigit() else r.strip()
               for r in args.records.split(",") if r.strip()]
    wanted = parse_feedback({"sha256": args.sha256, "records": records,
                             "verdict": args.verdict, "note": args.note})
    upload = registry.find(wanted.sha256)
    if upload is None:
        print("error: no kept upload has this SHA-256", file=sys.stderr)
        return 1
    kept = registry.add_feedback(wanted.sha256, wanted.records, wanted.verdict, wanted.note,
                                 who)
    print(f"recorded {len(kept)} {wanted.verdict} verdict(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
