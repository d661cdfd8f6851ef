"""Lambda-like worker processes for the handler functions (the local stack's function runtime).

Each function runs in its own worker process, as each Lambda function runs in its own execution
environment: the function's environment variables are set before its code is imported, the handler
module is loaded from the function's folder by path (``functions/<name>/handler.py``, handler
string ``handler.handler``, the folder first on ``sys.path`` like ``LAMBDA_TASK_ROOT``), module-level
state survives between invocations of a warm worker, and each invocation gets a context whose
``get_remaining_time_in_millis()`` counts down to the function's timeout. An invocation that runs
past the timeout is stopped the way Lambda stops it: the worker is killed ("Task timed out") and a
fresh one is started for the next invocation.

The autotag package never imports a handler by package name; this module only loads them by path.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from autotag.local.state import ACCOUNT_ID, REGION, LocalStackError

_NOT_INHERITED = ("AWS_", "POWERTOOLS_", "AUTOTAG_", "_HANDLER", "LAMBDA_")
"""The stack's own AWS/Powertools settings must not leak into a function: it gets exactly its own."""
INIT_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class LocalFunction:
    """A function as the local stack runs it (the local counterpart of a deployed Lambda function)."""

    name: str
    code_dir: Path
    handler: str = "handler.handler"
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    memory_mb: int = 512

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.name}"


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation."""

    request_id: str
    payload: Any = None
    error_type: str | None = None
    error_message: str | None = None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error_type is None


class LocalInvocationContext:
    """The local implementation of the Lambda context object: the attributes and the method that
    ``aws_lambda_powertools.utilities.typing.LambdaContext`` describes, for one invocation."""

    def __init__(self, spec: LocalFunction, request_id: str, deadline_epoch: float) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = str(spec.memory_mb)
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = f"local/{os.getpid()}"
        self.identity = None
        self.client_context = None
        self._deadline_epoch = deadline_epoch

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline_epoch - time.time()) * 1000))


# --- The worker process ---------------------------------------------------------------------------


def _load_handler(spec: LocalFunction) -> Callable[[Any, Any], Any]:
    module_name, _, function_name = spec.handler.rpartition(".")
    if not module_name or not function_name:
        raise LocalStackError(f"handler {spec.handler!r} of {spec.name} is not 'module.function'")
    sys.path.insert(0, str(spec.code_dir))
    module = importlib.import_module(module_name)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise LocalStackError(f"{spec.code_dir}/{module_name}.py has no callable {function_name!r}")
    return handler


def _watch_parent(parent_pid: int) -> None:
    """A worker must not outlive the stack, even if the stack is killed mid-invocation."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def _serve(connection: Connection, parent_pid: int) -> None:
    """The worker's loop: receive the spec, initialize (import the handler), then invocations."""
    # Ctrl-C is for `autotag local`, which finishes or abandons invocations in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    spec: LocalFunction = connection.recv()
    try:
        handler = _load_handler(spec)
    except BaseException as exc:
        connection.send(("init_error", type(exc).__name__, _describe(exc)))
        return
    connection.send(("ready",))
    while True:
        try:
            request_id, event, deadline_epoch = connection.recv()
        except (EOFError, OSError):
            return
        context = LocalInvocationContext(spec, request_id, deadline_epoch)
        try:
            result = handler(event, context)
        except Exception as exc:
            traceback.print_exc()
            connection.send(("error", type(exc).__name__, str(exc)))
        else:
            connection.send(("ok", result))


def worker_main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m autotag.local.lambda_workers FD PARENT_PID``."""
    args = sys.argv[1:] if argv is None else argv
    fd, parent_pid = int(args[0]), int(args[1])
    _serve(Connection(fd), parent_pid)


def _describe(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else type(exc).__name__


class _Worker:
    """One execution environment: a fresh interpreter with the function's environment variables.

    A plain child process (not multiprocessing's spawn, which re-imports the parent's main
    script) connected by a socket pair; it gets its own session so a terminal's Ctrl-C reaches
    only the stack, which decides when workers stop.
    """

    def __init__(self, spec: LocalFunction) -> None:
        self.spec = spec
        parent_socket, child_socket = socket.socketpair()
        environment = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
        environment.update(spec.environment)
        environment.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "_HANDLER": spec.handler,
                "PYTHONUNBUFFERED": "1",
            }
        )
        child_fd = child_socket.fileno()
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "autotag.local.lambda_workers", str(child_fd), str(os.getpid())],
            pass_fds=(child_fd,),
            env=environment,
            cwd=str(spec.code_dir),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child_socket.close()
        self.connection = Connection(parent_socket.detach())
        self.connection.send(spec)

    def wait_ready(self) -> None:
        if not self.connection.poll(INIT_TIMEOUT_SECONDS):
            self.kill()
            raise LocalStackError(
                f"function {self.spec.name} did not initialize in {INIT_TIMEOUT_SECONDS:.0f}s"
            )
        message = self.connection.recv()
        if message[0] != "ready":
            self.kill()
            raise LocalStackError(f"function {self.spec.name} failed to initialize: {message[2]}")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(3)


class FunctionPool:
    """Up to `concurrency` warm workers of one function; `invoke` is safe from many threads."""

    def __init__(self, spec: LocalFunction, *, concurrency: int = 1) -> None:
        self.spec = spec
        self.concurrency = concurrency
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        workers = [self._spawn() for _ in range(self.concurrency)]
        for worker in workers:
            worker.wait_ready()
            self._idle.put(worker)

    def _spawn(self) -> _Worker:
        worker = _Worker(self.spec)
        with self._lock:
            self._all.append(worker)
        return worker

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._all if w.alive]

    def invoke(self, event: Any, *, timeout: float | None = None) -> Invocation:
        """Run the handler on `event`, like a synchronous Lambda invoke (RequestResponse)."""
        if self._closed:
            raise LocalStackError(f"function {self.spec.name} is stopped")
        worker = self._take_worker()
        request_id = str(uuid.uuid4())
        limit = self.spec.timeout_seconds if timeout is None else timeout
        started = time.monotonic()
        try:
            worker.connection.send((request_id, event, time.time() + limit))
            if not worker.connection.poll(limit):
                raise TimeoutError
            message = worker.connection.recv()
        except TimeoutError:
            return self._lost(
                worker, request_id, started, "Sandbox.Timedout", f"Task timed out after {limit:.2f} seconds"
            )
        except (EOFError, OSError) as exc:
            reason = f"the function's process exited: {exc or 'connection closed'}"
            return self._lost(worker, request_id, started, "Runtime.ExitError", reason)
        duration = (time.monotonic() - started) * 1000
        self._idle.put(worker)
        if message[0] == "ok":
            return Invocation(request_id, payload=message[1], duration_ms=duration)
        return Invocation(request_id, error_type=message[1], error_message=message[2], duration_ms=duration)

    def _take_worker(self) -> _Worker:
        while True:
            if self._closed:
                raise LocalStackError(f"function {self.spec.name} is stopped")
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                with self._lock:
                    starved = not self._all
                if starved:  # every worker died and none could be restarted
                    self._idle.put(self._start_worker())

    def _start_worker(self) -> _Worker:
        worker = self._spawn()
        worker.wait_ready()
        return worker

    def _lost(
        self, worker: _Worker, request_id: str, started: float, error_type: str, message: str
    ) -> Invocation:
        """The invocation's worker is gone (timed out and killed, or exited): a fresh one replaces it."""
        self._replace(worker)
        duration = (time.monotonic() - started) * 1000
        return Invocation(request_id, error_type=error_type, error_message=message, duration_ms=duration)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        if self._closed:
            return
        fresh = self._spawn()
        try:
            fresh.wait_ready()
        except LocalStackError:
            return
        self._idle.put(fresh)

    def stop(self) -> None:
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()


if __name__ == "__main__":
    worker_main()
