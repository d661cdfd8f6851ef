"""S3 Control's job API (``CreateJob``, ``DescribeJob``, ``UpdateJobStatus``, ``ListJobs``) on
127.0.0.1, in S3 Control's own wire format (REST-XML, parsed and written with botocore's s3control
service model), over a :class:`~autotag.local.batch_engine.LocalJobEngine`."""

from __future__ import annotations

import threading
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from autotag.local.batch_engine import LocalJobEngine
from autotag.local.batch_jobs import API_PREFIX, JobError
from autotag.local.state import ACCOUNT_ID


class _Wire:
    def __init__(self) -> None:
        import botocore.session
        from botocore.parsers import RestXMLParser
        from botocore.serialize import create_serializer

        self.model = botocore.session.get_session().get_service_model("s3control")
        self.parser = RestXMLParser()
        self.serializer: Any = create_serializer("rest-xml", include_validation=False)

    def parse(self, operation: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """The request as botocore's model reads it; 400 when it is not XML or misses what the API
        requires (S3 Control answers MalformedXML / InvalidRequest)."""
        from botocore.parsers import ResponseParserError
        from botocore.validate import ParamValidator

        shape = self.model.operation_model(operation).input_shape
        try:
            parsed: dict[str, Any] = self.parser.parse(
                {"body": body, "headers": headers, "status_code": 200}, shape
            )
        except ResponseParserError:
            raise JobError(400, "MalformedXML", "the request body is not well-formed XML") from None
        parsed.pop("ResponseMetadata", None)
        report = ParamValidator().validate(parsed, shape)
        if report.has_errors():
            raise JobError(400, "InvalidRequest", " ".join(report.generate_report().split())[:1024])
        return _utc(parsed)

    def render(self, operation: str, result: dict[str, Any]) -> bytes:
        shape = self.model.operation_model(operation).output_shape
        root = ET.Element("")
        self.serializer._serialize(shape, result, root, f"{operation}Result")
        element = next(iter(root))
        element.set("xmlns", "http://awss3control.amazonaws.com/doc/2018-08-20/")
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element)


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, dict):
        return {k: _utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utc(v) for v in value]
    return value


def dispatch(
    engine: LocalJobEngine,
    wire: _Wire,
    method: str,
    path: str,
    query: dict[str, list[str]],
    body: bytes,
    headers: dict[str, str],
) -> bytes:
    """One call of the S3 Control job API → the response body (raises JobError)."""
    if not path.startswith(API_PREFIX):
        raise JobError(404, "NotFound", f"no such resource {path}")
    parts = [unquote(p) for p in path[len(API_PREFIX) :].split("/") if p]
    if method == "POST" and not parts:
        request = wire.parse("CreateJob", body, headers)
        return wire.render("CreateJob", {"JobId": engine.create(request)})
    if method == "GET" and not parts:
        jobs = [
            {
                "JobId": j.job_id,
                "Status": j.status,
                "Priority": j.request["Priority"],
                "CreationTime": j.created,
                "Operation": "LambdaInvoke",
                "ProgressSummary": j.descriptor()["ProgressSummary"],
            }
            for j in engine.jobs.values()
        ]
        return wire.render("ListJobs", {"Jobs": jobs})
    if method == "GET" and len(parts) == 1:
        job = engine.get(parts[0])
        with job.lock:
            descriptor = job.descriptor()
        return wire.render("DescribeJob", {"Job": descriptor})
    if method == "POST" and len(parts) == 2 and parts[1] == "status":
        requested = (query.get("requestedJobStatus") or [""])[0]
        reason = (query.get("statusUpdateReason") or [""])[0] or None
        job = engine.update_status(parts[0], requested, reason)
        return wire.render(
            "UpdateJobStatus",
            {
                "JobId": job.job_id,
                "Status": job.status,
                "StatusUpdateReason": job.status_update_reason or "",
            },
        )
    raise JobError(404, "NotFound", f"no such operation {method} {path}")


class S3ControlServer:
    """The job API of S3 Control on a loopback port, over a :class:`LocalJobEngine`."""

    def __init__(self, engine: LocalJobEngine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = engine
        self._host = host
        wire = _Wire()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-amz-request-id", uuid.uuid4().hex)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, error: JobError) -> None:
                root = ET.Element("Error")
                ET.SubElement(root, "Code").text = error.code
                ET.SubElement(root, "Message").text = error.message
                self._answer(error.status, ET.tostring(root))

            def _route(self, method: str) -> None:
                split = urlsplit(self.path)
                path, query = split.path.rstrip("/"), parse_qs(split.query)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    if headers.get("x-amz-account-id") != ACCOUNT_ID:
                        raise JobError(403, "AccessDenied", f"this emulator serves account {ACCOUNT_ID} only")
                    self._answer(200, dispatch(engine, wire, method, path, query, body, headers))
                except JobError as error:
                    self._error(error)
                except Exception as exc:  # an emulator bug must still answer
                    self._error(JobError(500, "InternalError", type(exc).__name__))

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3control", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_address[1]}"

    def start(self) -> S3ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.engine.stop()
        self._server.shutdown()
        self._server.server_close()
