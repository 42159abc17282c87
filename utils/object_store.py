"""Content-addressed files on S3-compatible storage: kept uploads and model versions by SHA-256.

An object's key ends in the SHA-256 of its bytes, so writing the same content twice (two
instances keeping the same upload at once) writes the same object, and a reader checks what
it downloaded against the name before using it. boto3 finds the endpoint and the keys in the
standard variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``), as every other S3 tool does; nothing of them is in our settings.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from utils.backends import BackendUnavailable

_BLOCK = 1 << 20


class StoreUnavailable(BackendUnavailable):
    """The object store could not be reached or refused the request."""

    reason = "store_unavailable"


class CorruptObject(RuntimeError):
    """An object's bytes do not match the SHA-256 it is stored under."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class ObjectStore:
    """The bucket and prefix of ``url`` (``s3://bucket/prefix``), created on first use."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0, read_timeout: float = 30.0,
                 client_options: dict[str, Any] | None = None) -> None:
        """``client_options``: boto3.client keywords (endpoint_url, keys) instead of the
        standard variables (a benchmark's own server)."""
        parts = urlsplit(url)
        self.url = url.rstrip("/")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self._options = {"connect_timeout": connect_timeout, "read_timeout": read_timeout,
                         "retries": {"max_attempts": 2, "mode": "standard"}}
        self._client_options = client_options or {}
        self._client = None
        self._pid: int | None = None
        self._bucket_checked = False

    @property
    def client(self):
        """A boto3 client per process (clients must not cross a fork)."""
        if self._client is None or self._pid != os.getpid():
            import boto3
            from botocore.config import Config

            self._client = boto3.client("s3", config=Config(**self._options),
                                        **self._client_options)
            self._pid = os.getpid()
        return self._client

    def key(self, kind: str, sha256: str, suffix: str = "") -> str:
        return "/".join(filter(None, (self.prefix, kind, sha256 + suffix)))

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key_of(self, location: str) -> str:
        parts = urlsplit(location)
        if parts.scheme != "s3" or parts.netloc != self.bucket:
            raise ValueError(f"{location!r} is not in s3://{self.bucket}")
        return parts.path.lstrip("/")

    def _call(self, method: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise StoreUnavailable(f"object store {method}: {exc}") from exc

    def ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise StoreUnavailable(f"object store bucket {self.bucket}: {exc}") from exc
            except BotoCoreError as exc:
                raise StoreUnavailable(f"object store bucket {self.bucket}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"object store bucket {self.bucket}: {exc}") from exc
        self._bucket_checked = True

    def put_file(self, kind: str, sha256: str, path: Path, suffix: str = "") -> str:
        """Store the file at ``path`` under its SHA-256 (which the caller computed); its
        location. Nothing is written if an object of that content is there already."""
        self.ensure_bucket()
        key = self.key(kind, sha256, suffix)
        if not self.exists(key):
            with open(path, "rb") as body:
                self._call("put_object", Bucket=self.bucket, Key=key, Body=body,
                           Metadata={"sha256": sha256})
        return self.location(key)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreUnavailable(f"object store head_object: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"object store head_object: {exc}") from exc
        return True

    def fetch(self, location: str, sha256: str, target: Path) -> Path:
        """Download the object at ``location`` to ``target`` (atomically), checking that its
        bytes hash to ``sha256``; a file already at ``target`` with that hash is reused."""
        if target.is_file() and sha256_of(target) == sha256:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                answer = self._call("get_object", Bucket=self.bucket,
                                    Key=self.key_of(location))
                for block in answer["Body"].iter_chunks(_BLOCK):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise CorruptObject(f"{location} does not hash to {sha256[:16]}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def reachable(self) -> bool:
        try:
            self._bucket_checked = False
            self.ensure_bucket()
        except StoreUnavailable:
            return False
        return True
