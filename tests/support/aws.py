"""The AWS emulator for tests: moto server on a free loopback port, spoken to over HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
from autotag.local import s3_events
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

REGION = "us-east-1"


@dataclass
class Emulator:
    server: ThreadedMotoServer
    endpoint: str

    @classmethod
    def start(cls) -> Emulator:
        # S3 notifications with a sequencer and versionId, as real S3 sends them (in this process).
        s3_events.install()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return cls(server=server, endpoint=f"http://{host}:{port}")

    def stop(self) -> None:
        self.server.stop()

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)

    def resource(self, service: str) -> Any:
        return boto3.resource(service, region_name=REGION, endpoint_url=self.endpoint)


def unique(prefix: str) -> str:
    """A resource name no other test uses (tests clean up only what they created)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
