"""``s3://bucket/key`` inputs, read from any S3-compatible server with boto3.

boto3 takes the server and credentials from the standard variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``) or its usual config
files, so a cluster's workers need the same environment as the client. Each process makes its
own client (a boto3 client is neither picklable nor fork-safe); tasks carry only URLs.

A "folder" is a key prefix ending in ``/``; a glob matches keys as a local glob matches paths
(``*`` within one segment, ``**`` across any). Every failure is an ``S3InputError`` naming
the object or bucket, like a file path.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass

SCHEME = "s3://"
_GLOB_CHARS = frozenset("*?[")
_LINE_PROBE = 1 << 16


class S3InputError(ValueError):
    """An S3 input that cannot be listed or read: names the object, bucket or server."""


@dataclass(frozen=True)
class S3Object:
    url: str
    size: int


def is_s3(target: str) -> bool:
    return target.startswith(SCHEME)


def split_url(url: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``."""
    bucket, _, key = url[len(SCHEME):].partition("/")
    if not bucket:
        raise S3InputError(f"{url}: no bucket named (expected s3://bucket/key)")
    return bucket, key


@functools.lru_cache(maxsize=4)
def _client_of(pid: int, endpoint: str | None, access_key: str | None):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", config=Config(connect_timeout=10, read_timeout=60,
                            retries={"max_attempts": 3, "mode": "standard"}))


def client():
    """This process's S3 client (keyed by pid: never shared across a fork; and by server)."""
    return _client_of(os.getpid(), os.environ.get("AWS_ENDPOINT_URL"),
                      os.environ.get("AWS_ACCESS_KEY_ID"))


def _failure(exc: Exception, url: str) -> S3InputError:
    """``exc`` as an error naming ``url`` (or the server, when it cannot be reached)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, EndpointConnectionError):
        return S3InputError(f"{url}: cannot reach the S3 server ({exc}); "
                            "check AWS_ENDPOINT_URL")
    if isinstance(exc, NoCredentialsError):
        return S3InputError(f"{url}: no S3 credentials (set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY)")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        bucket, _ = split_url(url)
        if code == "NoSuchBucket":
            return S3InputError(f"{SCHEME}{bucket}: no such bucket")
        if code in ("NoSuchKey", "404", "NotFound"):
            return S3InputError(f"{url}: no such object")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return S3InputError(f"{url}: access denied ({code})")
        return S3InputError(f"{url}: S3 error {code or exc}")
    return S3InputError(f"{url}: {exc}")


def _s3_errors():
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def list_prefix(bucket: str, prefix: str) -> list[S3Object]:
    """Every object whose key starts with ``prefix``, in key order."""
    url = f"{SCHEME}{bucket}/{prefix}"
    found: list[S3Object] = []
    try:
        pages = client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            found.extend(S3Object(f"{SCHEME}{bucket}/{item['Key']}", int(item["Size"]))
                         for item in page.get("Contents", ()))
    except _s3_errors() as exc:
        raise _failure(exc, url) from None
    return sorted(found, key=lambda item: item.url)


def expand(target: str) -> tuple[list[S3Object], dict[str, list[S3Object]]]:
    """What ``target`` names: (objects, folders). An object key or glob gives objects; a
    prefix that is no object gives one folder (its URL ending in ``/`` -> every object below
    it, at any depth)."""
    bucket, key = split_url(target)
    if _GLOB_CHARS & set(key):
        stem = key[:min(key.index(c) for c in _GLOB_CHARS if c in key)]
        matches = [item for item in list_prefix(bucket, stem)
                   if _glob_match(split_url(item.url)[1], key)]
        if not matches:
            raise S3InputError(f"{target}: no object matches")
        return matches, {}
    if key and not key.endswith("/"):
        exact = [item for item in list_prefix(bucket, key) if item.url == target]
        if exact:
            return exact, {}
    folder = key if not key or key.endswith("/") else key + "/"
    below = [item for item in list_prefix(bucket, folder)
             if not item.url.endswith("/")]  # "folder markers" some tools create
    if not below:
        raise S3InputError(f"{target}: no such object or prefix")
    return [], {f"{SCHEME}{bucket}/{folder}": below}


def _glob_match(key: str, pattern: str) -> bool:
    """As a local glob: ``*``, ``?`` and ``[...]`` stay within one ``/`` segment; a ``**``
    segment matches any depth."""
    if "**" in pattern:
        return fnmatch.fnmatchcase(key, pattern)
    parts, wanted = key.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatchcase(part, want) for part, want in zip(parts, wanted, strict=True))


def read(url: str, start: int = 0, end: int | None = None) -> bytes:
    """Bytes [start, end) of the object (``end`` None: to its end)."""
    bucket, key = split_url(url)
    options = {}
    if start or end is not None:
        if end is not None and end <= start:
            return b""
        options["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
    try:
        return client().get_object(Bucket=bucket, Key=key, **options)["Body"].read()
    except _s3_errors() as exc:
        raise _failure(exc, url) from None


def line_start(url: str, position: int, size: int) -> int:
    """The first line start at or after ``position`` (as a local file's readline finds it)."""
    if position <= 0:
        return 0
    at = position - 1
    while at < size:
        chunk = read(url, at, min(size, at + _LINE_PROBE))
        newline = chunk.find(b"\n")
        if newline >= 0:
            return at + newline + 1
        at += len(chunk)
    return size


@functools.lru_cache(maxsize=64)
def head(url: str, size: int, count: int) -> bytes:
    """The first ``count`` bytes of the object (cached: every piece of a file asks)."""
    return read(url, 0, min(size, count)) if size else b""


def size_of(url: str) -> int:
    bucket, key = split_url(url)
    try:
        return int(client().head_object(Bucket=bucket, Key=key)["ContentLength"])
    except _s3_errors() as exc:
        raise _failure(exc, url) from None
