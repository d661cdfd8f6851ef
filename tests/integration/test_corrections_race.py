"""A re-tag racing corrections, against the emulator (DynamoDB and S3): threads run the real
pipeline (`TaggingService.process_object`) and the correction service on one image at once. No
decision and no provider result may be lost, and the object's S3 tags must end up as the tags in
force of the record that won."""

from __future__ import annotations

import threading

import pytest
from autotag.config import AutotagConfig, CachePolicy
from autotag.corrections import CorrectionRequest, CorrectionService
from autotag.eventloop import EventLoopPortal
from autotag.image import S3Location
from autotag.objects import S3ObjectStorage
from autotag.retry import Deadline
from autotag.s3tags import ObjectTagWriter, desired_tags
from autotag.store.dynamodb import DynamoImageStore
from autotag.store.schema import create_table
from autotag.tagging import TaggingService
from autotag.tagstep import TagStep

from tests.support.aws import unique
from tests.support.fakes import FakeTagger, InMemoryPublisher
from tests.support.images import jpeg_bytes

pytestmark = pytest.mark.integration

CORRECTORS = 6
RETAGGERS = 3


@pytest.fixture
def wired(aws_emulator):
    dynamodb, s3 = aws_emulator.client("dynamodb"), aws_emulator.client("s3")
    table, bucket = unique("race"), unique("race-bucket")
    create_table(dynamodb, table)
    s3.create_bucket(Bucket=bucket)
    # No cache: every re-tag calls the (fake) provider and writes a full new result.
    config = AutotagConfig(cache=CachePolicy(enabled=False))
    store = DynamoImageStore(dynamodb, table)
    objects = S3ObjectStorage(s3)
    publisher = InMemoryPublisher()
    portal = EventLoopPortal()
    tag_step = TagStep(config=config, tagger=FakeTagger(delay=0.01), store=store, portal=portal)
    service = TaggingService(config=config, tag_step=tag_step, objects=objects, publisher=publisher)
    corrections = CorrectionService(
        store=store, tag_writer=ObjectTagWriter(objects), policy=config.s3_tags, publisher=publisher
    )
    yield service, corrections, bucket, s3
    portal.close()
    dynamodb.delete_table(TableName=table)


def test_retags_racing_corrections_lose_nothing(wired):
    service, corrections, bucket, s3 = wired
    s3.put_object(Bucket=bucket, Key="race.jpg", Body=jpeg_bytes(64, 48), Tagging="owner=ann")
    service.process_object(S3Location(bucket, "race.jpg"), deadline=Deadline.after(30))
    errors: list[BaseException] = []
    start = threading.Barrier(CORRECTORS + RETAGGERS)

    def correct(n: int) -> None:
        try:
            start.wait()
            remove = ("grass",) if n == 0 else ()
            corrections.correct(
                bucket, "race.jpg", CorrectionRequest(add=(f"person {n}",), remove=remove, by=f"apikey:{n}")
            )
        except BaseException as exc:
            errors.append(exc)

    def retag() -> None:
        try:
            start.wait()
            service.process_object(S3Location(bucket, "race.jpg"), deadline=Deadline.after(30))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=correct, args=(n,)) for n in range(CORRECTORS)]
    threads += [threading.Thread(target=retag) for _ in range(RETAGGERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []

    record = corrections.store.get(bucket, "race.jpg")
    assert record.corrections.version == CORRECTORS
    assert sorted(d.by for d in record.corrections.log if d.action == "add") == sorted(
        f"apikey:{n}" for n in range(CORRECTORS)
    )
    in_force = [t.name for t in record.tags_in_force]
    assert {f"person {n}" for n in range(CORRECTORS)} <= set(in_force)
    assert "grass" not in in_force
    assert {"dog", "pet"} <= set(in_force)  # the provider's result survived too

    tag_set = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key="race.jpg")["TagSet"]}
    expected = desired_tags(record.tags_in_force, service.config.s3_tags, slots=9)
    assert tag_set == {"owner": "ann", **expected}
    for n in range(CORRECTORS):
        assert corrections.store.images_with_tag(f"person {n}").items[0].key == "race.jpg"
    assert corrections.store.images_with_tag("grass").items == []
