import pytest

pytestmark = pytest.mark.integration


def test_emulator_serves_s3_over_loopback(aws_emulator):
    from tests.support.aws import unique

    s3 = aws_emulator.client("s3")
    bucket = unique("smoke")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a b.txt", Body=b"hi")
    assert s3.get_object(Bucket=bucket, Key="a b.txt")["Body"].read() == b"hi"
    assert aws_emulator.endpoint.startswith("http://127.0.0.1:")
