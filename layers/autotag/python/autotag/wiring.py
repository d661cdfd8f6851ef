"""Wiring to AWS: the function's boto3 clients and the process-wide tagging service, built from the
function's settings and config on first use (never at import) and kept while the process is warm.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from autotag.config import get_config
from autotag.image import S3Location
from autotag.settings import RuntimeSettings, get_settings
from autotag.tagging import TaggingService
from autotag.tagstep import TagStep


@dataclass(frozen=True)
class AwsClients:
    """boto3 clients for the function's resources, created on first use (never at import)."""

    settings: RuntimeSettings
    max_pool_connections: int = 20
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._cache:
                import boto3
                from botocore.config import Config

                self._cache[service] = boto3.session.Session().client(
                    service,
                    endpoint_url=self.settings.aws_endpoint_url,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 5},
                        max_pool_connections=self.max_pool_connections,
                    ),
                )
            return self._cache[service]


@lru_cache(maxsize=1)
def aws_clients() -> AwsClients:
    config = get_config()
    return AwsClients(get_settings(), max_pool_connections=max(20, config.processing.concurrency * 3))


@lru_cache(maxsize=1)
def build_service() -> TaggingService:
    """The process-wide service wired to AWS from the function's settings and config (cached;
    ``reset_service()`` drops it)."""
    # Imported here, at the first invocation: the AWS adapters and the provider HTTP client.
    from autotag.credentials import Credentials
    from autotag.events import BatchingPublisher, EventBridgePublisher
    from autotag.fanout import Tagger
    from autotag.objects import S3ObjectStorage
    from autotag.providers.base import ProviderContext
    from autotag.providers.http import make_client
    from autotag.store.dynamodb import DynamoImageStore

    config, settings, clients = get_config(), get_settings(), aws_clients()
    s3 = clients.client("s3")

    def presign(location: S3Location, seconds: int) -> str:
        params = {"Bucket": location.bucket, "Key": location.key}
        if location.version_id:
            params["VersionId"] = location.version_id
        return str(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))

    http = make_client()
    context = ProviderContext(
        http=http, credentials=Credentials(), presign=presign, aws_endpoint_url=settings.aws_endpoint_url
    )
    tag_step = TagStep(
        config=config,
        tagger=Tagger(config, context),
        store=DynamoImageStore(clients.client("dynamodb"), settings.table_name),
        on_close=[http.aclose],
    )
    return TaggingService(
        config=config,
        tag_step=tag_step,
        objects=S3ObjectStorage(s3),
        publisher=BatchingPublisher(EventBridgePublisher(clients.client("events"), settings.event_bus_name)),
    )


def reset_service() -> None:
    """Forget the cached service, clients, config and settings (tests; config changes)."""
    if build_service.cache_info().currsize:
        build_service().close()
    build_service.cache_clear()
    aws_clients.cache_clear()
    get_config.cache_clear()
    get_settings.cache_clear()
