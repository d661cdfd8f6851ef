"""The local stack as one object: start everything, run until told to stop, stop everything.

``autotag local`` is :meth:`LocalStack.run`; the demo and the end-to-end tests run the same thing.
Shutdown order matters: first nothing new is accepted (API, pollers), in-flight invocations get a
grace period to finish (a message not deleted simply returns to its queue), then the function
workers and finally the emulator stop, and the state file is removed. Every child process also
watches its parent, so none outlives the stack even when it is killed outright.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from autotag.deploy.config import DeploymentConfig, FunctionName
from autotag.deploy.gateway import gateway_responses
from autotag.deploy.resolve import find_root
from autotag.local.api_gateway import ApiGatewayConfig, LocalApiGateway
from autotag.local.batch_operations import LocalBatchOperations
from autotag.local.emulator import EmulatorProcess, ensure_port_free
from autotag.local.lambda_workers import FunctionPool, Invocation, LocalFunction
from autotag.local.monitor import OutcomeMonitor
from autotag.local.provision import LocalNames, ProvisionedStack, emulator_client, provision
from autotag.local.sqs_source import BatchOutcome, EventBridgeQueueSource, SqsEventSource
from autotag.local.stack_output import batch_lines, event_failure_line, request_line
from autotag.local.state import (
    DEFAULT_STATE_PATH,
    LocalStackError,
    LocalState,
    StateLock,
    remove_state,
    write_state,
)
from autotag.local.usage_plan import UsageLimits

DEFAULT_AWS_PORT = 4566
DEFAULT_API_PORT = 3000
SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass
class LocalOptions:
    config: DeploymentConfig = field(default_factory=DeploymentConfig)
    config_path: Path | None = None
    host: str = "127.0.0.1"
    aws_port: int = DEFAULT_AWS_PORT
    api_port: int = DEFAULT_API_PORT
    state_path: Path = DEFAULT_STATE_PATH
    api_key: str | None = None
    root: Path | None = None
    upload_workers: int = 2
    function_log_level: str | None = None
    """Overrides each function's POWERTOOLS_LOG_LEVEL (e.g. WARNING to quiet the JSON logs)."""
    metrics: bool = False
    """Print the functions' EMF metrics (off locally: there is no CloudWatch to read them)."""
    secret_values: Mapping[str, str] = field(default_factory=dict)
    emit: Callable[[str], None] | None = None


class LocalStack:
    def __init__(self, options: LocalOptions) -> None:
        self.options = options
        self.state: LocalState | None = None
        self.provisioned: ProvisionedStack | None = None
        self._lock = StateLock(options.state_path)
        self._emulator = EmulatorProcess(options.host, options.aws_port)
        self._pools: dict[FunctionName, FunctionPool] = {}
        self._sources: list[SqsEventSource | EventBridgeQueueSource] = []
        self._api: LocalApiGateway | None = None
        self._monitor: OutcomeMonitor | None = None
        self._batch: LocalBatchOperations | None = None
        self._print_lock = threading.Lock()
        self._stopped = threading.Event()
        self._started = False

    # -- output

    def emit(self, line: str) -> None:
        with self._print_lock:
            if self.options.emit is not None:
                self.options.emit(line)
            else:
                print(line, flush=True)

    # -- lifecycle

    def start(self) -> LocalState:
        self._lock.acquire()
        self._started = True
        atexit.register(self.stop)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalState:
        options = self.options
        root = find_root(options.root)
        ensure_port_free(options.host, options.api_port, what="API (--api-port)")
        self._emulator.start()
        endpoint = self._emulator.endpoint
        extra_env = {"POWERTOOLS_METRICS_DISABLED": "false" if options.metrics else "true"}
        if not options.metrics:
            # Powertools warns on every invocation that there are no metrics to flush.
            extra_env["PYTHONWARNINGS"] = "ignore:No application metrics to publish:UserWarning"
        if options.function_log_level:
            extra_env["POWERTOOLS_LOG_LEVEL"] = options.function_log_level.upper()
        provisioned = provision(
            endpoint,
            options.config,
            names=LocalNames(),
            secret_values=options.secret_values,
            extra_environment=extra_env,
        )
        self.provisioned = provisioned
        deployment = provisioned.deployment
        resources = provisioned.resources

        for name, spec in deployment.functions.items():
            workers = options.upload_workers if name == FunctionName.ON_UPLOAD else 1
            self._pools[name] = FunctionPool(
                LocalFunction(
                    name=f"autotag-local-{name.value}",
                    code_dir=(root / spec.code_dir).resolve(),
                    handler=spec.handler,
                    environment=provisioned.environments[name],
                    timeout_seconds=spec.timeout_seconds,
                    memory_mb=spec.memory_mb,
                ),
                concurrency=max(1, min(workers, deployment.tag_event_source.max_concurrency)),
            )
        self._start_pools()
        # S3 Batch Operations (the emulator has no S3 Control jobs): on_batch and the job API.
        self._batch = LocalBatchOperations(
            root=root,
            provisioned=provisioned,
            endpoint_url=endpoint,
            host=options.host,
            extra_environment=extra_env,
        ).start()
        resources = resources.model_copy(update={"extra": {**resources.extra, **self._batch.state_extra}})

        sqs = emulator_client("sqs", endpoint)
        source = deployment.tag_event_source
        self._sources = [
            SqsEventSource(
                sqs,
                resources.tag_queue_url,
                self._pools[FunctionName.ON_UPLOAD],
                batch_size=source.batch_size,
                max_batching_window_seconds=source.max_batching_window_seconds,
                report_batch_item_failures=source.report_batch_item_failures,
                concurrency=self._pools[FunctionName.ON_UPLOAD].concurrency,
                on_batch=self._log_batch,
            ),
            EventBridgeQueueSource(
                sqs,
                resources.events_queue_url,
                self._pools[FunctionName.ON_EVENT],
                on_invoke=self._log_event_invoke,
            ),
        ]
        api_key = options.api_key or secrets.token_urlsafe(24)
        api = options.config.api
        self._api = LocalApiGateway(
            self._pools[FunctionName.TAG_API],
            ApiGatewayConfig(
                api_keys={api_key},
                limits=UsageLimits(
                    key_rate_limit=api.rate_limit,
                    key_burst_limit=api.burst_limit,
                    quota_limit=api.quota_limit,
                    quota_period=api.quota_period,
                    stage_rate_limit=api.stage_rate_limit,
                    stage_burst_limit=api.stage_burst_limit,
                ),
                max_image_chars=api.max_image_chars,
                gateway_responses=gateway_responses(),
            ),
            host=options.host,
            port=options.api_port,
            on_request=self._log_request,
        )
        self._api.start()
        for poller in self._sources:
            poller.start()
        if resources.monitor_queue_url:
            self._monitor = OutcomeMonitor(sqs, resources.monitor_queue_url, self.emit)
            self._monitor.start()

        child_pids = {"emulator": self._emulator.pid or 0}
        for name, pool in self._pools.items():
            for index, pid in enumerate(pool.pids):
                child_pids[f"{name.value}-{index}"] = pid
        for index, pid in enumerate(self._batch.pool.pids):
            child_pids[f"on_batch-{index}"] = pid
        self.state = LocalState(
            pid=os.getpid(),
            endpoint_url=endpoint,
            api_url=self._api.url,
            api_key=api_key,
            resources=resources,
            config_path=str(options.config_path) if options.config_path else None,
            child_pids=child_pids,
        )
        write_state(options.state_path, self.state)
        return self.state

    def _start_pools(self) -> None:
        errors: list[BaseException] = []

        def start(pool: FunctionPool) -> None:
            try:
                pool.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(pool,)) for pool in self._pools.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def stop(self) -> None:
        if self._stopped.is_set() or not self._started:
            return
        self._stopped.set()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._api is not None:
            with contextlib.suppress(Exception):
                self._api.stop()
        for poller in self._sources:
            poller.request_stop()
        grace = SHUTDOWN_GRACE_SECONDS
        for poller in self._sources:
            poller.join(grace)
        if self._monitor is not None:
            self._monitor.stop()
        if self._batch is not None:
            self._batch.stop()
        for pool in self._pools.values():
            pool.stop()
        self._emulator.stop()
        if self.state is not None:
            remove_state(self.options.state_path, pid=self.state.pid)
        self._lock.release()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def child_pids(self) -> list[int]:
        pids = [pid for pool in self._pools.values() for pid in pool.pids]
        if self._batch is not None:
            pids += self._batch.pool.pids
        if self._emulator.pid:
            pids.append(self._emulator.pid)
        return pids

    def run(self, *, on_ready: Callable[[LocalState], None] | None = None) -> int:
        """Start, then serve in the foreground until SIGINT/SIGTERM/SIGHUP. Returns the exit status."""
        stop = threading.Event()
        interrupts = 0

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts > 1:  # a second Ctrl-C: stop waiting for in-flight work
                for pool in self._pools.values():
                    pool.stop()
            stop.set()

        watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, on_signal) for s in watched}
        try:
            state = self.start()
        except BaseException:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            raise
        status = 0
        try:
            if on_ready:
                on_ready(state)
            while not stop.wait(0.5):
                if not self._emulator_alive():
                    self.emit("autotag local: the AWS emulator exited; stopping")
                    status = 1
                    break
        finally:
            self.emit("autotag local: stopping")
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.emit("autotag local: stopped")
        return status

    def _emulator_alive(self) -> bool:
        return self._emulator.running

    # -- log lines

    def _log_batch(self, outcome: BatchOutcome) -> None:
        queue = self.provisioned.deployment.tag_queue if self.provisioned else None
        visibility = queue.visibility_timeout_seconds if queue else 0
        max_receives = queue.max_receive_count if queue else 0
        for line in batch_lines(outcome, visibility=visibility, max_receives=max_receives):
            self.emit(line)

    def _log_event_invoke(self, event: dict[str, Any], invocation: Invocation) -> None:
        line = event_failure_line(event, invocation)
        if line:
            self.emit(line)

    def _log_request(self, method: str, path: str, status: int, millis: float) -> None:
        self.emit(request_line(method, path, status, millis))


def wait_for_state(path: Path, *, timeout: float = 60.0, process: Any = None) -> LocalState:
    """Wait until a starting ``autotag local`` has written its state file (for the demo and tests)."""
    from autotag.local.state import read_state

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise LocalStackError(
                f"autotag local exited with status {process.returncode} before it was ready"
            )
        if path.exists():
            with contextlib.suppress(LocalStackError):
                return read_state(path)
        time.sleep(0.1)
    raise LocalStackError(f"autotag local did not become ready within {timeout:.0f}s")
