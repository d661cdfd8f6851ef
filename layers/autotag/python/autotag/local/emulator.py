"""The AWS emulator (moto server) in a child process.

Why a child process rather than moto's in-process ``ThreadedMotoServer``: the emulator then has
its own interpreter (no GIL contention with the pollers, the API and the handlers on a small
machine), a crash or leak in it cannot take the stack down, and it is the same server a user would
run by hand, so boto3 and the AWS CLI see exactly what they would see against ``moto_server``.

The child must never outlive ``autotag local``, however that ends (Ctrl-C, SIGTERM, a crash, even
SIGKILL): it runs :func:`main` below, which serves moto and exits as soon as its stdin (a pipe whose
only writer is the parent) reaches end-of-file. The kernel closes that pipe when the parent dies,
so no ``prctl`` (Linux-only) is needed. The parent also terminates it explicitly on shutdown.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx

from autotag.local import s3_events
from autotag.local.state import LocalStackError

READY_TIMEOUT_SECONDS = 30.0


class PortInUseError(LocalStackError):
    code = "port_in_use"


def ensure_port_free(host: str, port: int, *, what: str) -> None:
    """Fail with one clear line if something already listens on host:port."""
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise PortInUseError(
                f"port {port} on {host} is already in use; choose another {what} port"
            ) from None
        raise
    finally:
        probe.close()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class EmulatorProcess:
    """Start, wait for, and stop the moto server child."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        self.host = host
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        ensure_port_free(self.host, self.port, what="emulator (--aws-port)")
        if self.port == 0:
            self.port = free_port(self.host)
        command = [
            sys.executable,
            "-m",
            "autotag.local.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        # stderr goes to a file, not a pipe: nobody reads a pipe while the stack runs, and once its
        # buffer (64 KiB of werkzeug access lines) is full the emulator would block on every request.
        self._stderr = tempfile.NamedTemporaryFile(prefix="autotag-emulator-", suffix=".log")  # noqa: SIM115
        self._process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            # Its own session: Ctrl-C reaches only `autotag local`, which then stops the emulator
            # after the handlers (which still need it) have finished.
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._process is not None
        started = time.monotonic()
        while time.monotonic() - started < READY_TIMEOUT_SECONDS:
            if self._process.poll() is not None:
                detail = self._stderr_text()
                last = (
                    detail.strip().splitlines()[-1] if detail.strip() else f"exit {self._process.returncode}"
                )
                raise LocalStackError(f"the AWS emulator did not start: {last}")
            try:
                httpx.get(f"{self.endpoint}/moto-api/data.json", timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return
        self.stop()
        raise LocalStackError(
            f"the AWS emulator did not answer on {self.endpoint} within {READY_TIMEOUT_SECONDS:.0f}s"
        )

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            self._close_stderr()
            return
        with contextlib.suppress(OSError):
            if process.stdin:
                process.stdin.close()  # the child's watchdog exits on end-of-file
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
        finally:
            self._close_stderr()

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")


# --- The child ----------------------------------------------------------------------------------


def _exit_when_parent_goes() -> None:
    """Block on stdin; end-of-file means the parent closed it or died."""
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(1024):
            pass
    os._exit(0)


def _item_level_transaction_backups() -> None:
    """Make moto's TransactWriteItems cost what the transaction touches, not the table size.

    moto backs up a transaction by deep-copying the whole table once per item in it (the copies
    are identical: all are taken before the first write) and swaps the copy back in on failure.
    With the image table (a record plus one index item per tag, all written in one transaction)
    that is several full-table copies per image: the emulator slows quadratically and its memory
    balloons over a few thousand images. Here the backup is the items the transaction names, taken
    before it runs and written back if it fails; the outcome is the same.
    """
    import copy
    import types

    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    state = threading.local()

    def deepcopy(value: object, memo: dict[int, object] | None = None) -> object:
        if getattr(state, "active", False) and isinstance(value, Table):
            return value  # moto's whole-table backup: replaced by the item backups below
        return copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)  # type: ignore[assignment]
    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: models.DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        backups: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        for entry in transact_items:
            operation: dict[str, Any] = next(iter(entry.values())) if entry else {}
            table_name = operation.get("TableName") if isinstance(operation, dict) else None
            table = self.tables.get(table_name) if isinstance(table_name, str) else None
            if table is None or not isinstance(table_name, str):
                continue
            key = operation.get("Key")
            if key is None and isinstance(operation.get("Item"), dict):
                item = operation["Item"]
                key = {a: item[a] for a in (table.hash_key_attr, table.range_key_attr) if a and a in item}
            if not isinstance(key, dict):
                continue
            current = None
            with contextlib.suppress(Exception):  # an invalid key: moto's own checks reject it
                current = self.get_item(table_name, key)
            attributes = copy.deepcopy(current.to_json()["Attributes"]) if current is not None else None
            backups.append((table_name, key, attributes))
        state.active = True
        try:
            original(self, transact_items)
        except BaseException:
            for table_name, key, attributes in reversed(backups):
                with contextlib.suppress(Exception):
                    if attributes is None:
                        self.delete_item(table_name, key)
                    else:
                        self.put_item(table_name, attributes)
            raise
        finally:
            state.active = False

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autotag.local.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    _item_level_transaction_backups()
    s3_events.install()
    try:
        server = make_server(
            args.host,
            args.port,
            DomainDispatcherApplication(create_backend_app),
            threaded=True,
            request_handler=MotoRequestHandler,
        )
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    threading.Thread(target=_exit_when_parent_goes, name="parent-watch", daemon=True).start()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
