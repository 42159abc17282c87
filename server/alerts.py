"""The NDJSON answer of the prediction endpoints: one ECS alert per anomaly (utils/alerts.py).

A bad line anywhere in an upload must give a 400, not a 200 whose body stops half-way, so the
alerts cannot be sent while the file is still being read. They are written chunk by chunk,
while the chunks are scored, into a compressed temp file (in memory while small), and sent
from it once the whole input parsed: memory stays bounded however many anomalies there are,
and the disk holds about an eighth of the alerts' size (zlib level 1 on the Zeek samples).
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from flask import Response

from server.analysis import CHUNK_ROWS, Analysis, allowlisted, analyse_chunks
from utils.alerts import ecs_alerts, to_ndjson
from utils.allowlist import AllowList
from utils.model_store import LoadedModel
from utils.readers import ParsedRecords
from utils.scoring import ScoredRecords, iter_scored_chunks, score_records

NDJSON_MIMETYPE = "application/x-ndjson"
SPOOL_MEMORY_BYTES = 4 << 20  # compressed alerts kept in memory before the spool goes to disk
_READ_BLOCK = 1 << 16
_COMPRESS_LEVEL = 1  # fast: the spool is read back once, a moment later


class AlertSpool:
    """Compressed NDJSON written once, then streamed once; the temp file goes with close()."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (close())
            max_size=SPOOL_MEMORY_BYTES, dir=directory)
        self._compressor = zlib.compressobj(_COMPRESS_LEVEL)
        self.alerts = 0

    def write(self, alerts: list[dict]) -> None:
        if alerts:
            self._file.write(self._compressor.compress(to_ndjson(alerts)))
            self.alerts += len(alerts)

    def finish(self) -> None:
        self._file.write(self._compressor.flush())
        self._file.seek(0)

    def stream(self) -> Iterator[bytes]:
        """The NDJSON, in blocks; closes the spool at the end (or when the client leaves)."""
        try:
            decompressor = zlib.decompressobj()
            while block := self._file.read(_READ_BLOCK):
                if text := decompressor.decompress(block):
                    yield text
            if rest := decompressor.flush():
                yield rest
        finally:
            self.close()

    def close(self) -> None:
        self._file.close()


def alerts_from_file(
    model: LoadedModel, path: Path, *, spool_dir: Path | None = None,
    chunk_rows: int = CHUNK_ROWS, threads: int | None = None,
    max_decompressed_bytes: int | None = None, allowlist: AllowList | None = None,
) -> tuple[Analysis, AlertSpool]:
    """Score a file and write the ECS alerts of its anomalies (but those ``allowlist``
    allows), in input order (a Zeek log read in chunks: batch by batch, in time order; every
    alert names its row).

    The Analysis (no rows described: the alerts are the detail) is what registering the
    upload and logging the request need. InputFormatError as analyse_file gives it, and
    ``threads`` and ``max_decompressed_bytes`` mean what they mean there.
    """
    chunks = iter_scored_chunks(model, path, chunk_rows=chunk_rows, threads=threads,
                                max_decompressed_bytes=max_decompressed_bytes)
    return _spooled(allowlisted(chunks, allowlist), model, spool_dir)


def alerts_from_records(
    model: LoadedModel, records: ParsedRecords, allowlist: AllowList | None = None
) -> tuple[Analysis, AlertSpool]:
    return _spooled(allowlisted([(records, score_records(model, records))], allowlist),
                    model, None)


def ndjson_response(spool: AlertSpool) -> Response:
    response = Response(spool.stream(), mimetype=NDJSON_MIMETYPE)
    response.call_on_close(spool.close)  # if the body is never iterated
    response.headers["Content-Disposition"] = 'attachment; filename="anomalyze-alerts.ndjson"'
    return response


def _spooled(
    chunks: Iterable[tuple[ParsedRecords, ScoredRecords]], model: LoadedModel,
    spool_dir: Path | None,
) -> tuple[Analysis, AlertSpool]:
    spool = AlertSpool(spool_dir)
    scored_at = datetime.now(UTC)  # one scoring time for the whole input

    def writing(source: Iterable[tuple[ParsedRecords, ScoredRecords]]):
        for records, scored in source:
            spool.write(ecs_alerts(model, records, scored, scored_at=scored_at))
            yield records, scored

    try:
        analysis = analyse_chunks(writing(chunks), limit=0)
        spool.finish()
    except BaseException:
        spool.close()
        raise
    return analysis, spool
