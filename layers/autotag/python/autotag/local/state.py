"""The state file of a running local stack: what ``autotag local`` started and where to reach it.

The operations CLI, the demo and the tests read it to find the emulator, the API and the
resource names. A lock file next to it (an OS file lock, released when the process dies, however
it dies) makes a second ``autotag local`` on the same state file fail instead of racing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autotag.errors import AutotagError, ConfigError

DEFAULT_STATE_PATH = Path(".autotag") / "local.json"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
"""moto's default account; ARNs the emulator hands out carry it."""


class LocalStackError(AutotagError):
    """The local stack cannot start or cannot be found."""

    code = "local_stack"


class AlreadyRunningError(LocalStackError):
    code = "local_stack_running"


class LocalResources(BaseModel):
    """Physical names of the resources the local stack created (same roles as the CDK stack's)."""

    model_config = ConfigDict(frozen=True)

    images_bucket: str
    table_name: str
    idempotency_table_name: str
    event_bus_name: str
    tag_queue_url: str
    dlq_url: str
    events_queue_url: str = Field(description="Where the bus rules for on_event deliver (the local stand-in)")
    monitor_queue_url: str | None = Field(
        default=None, description="Subscribed to the bus for the stack's one-line-per-image log"
    )
    secrets: dict[str, str] = Field(default_factory=dict, description="Provider key -> secret name")
    extra: dict[str, str] = Field(default_factory=dict)


class LocalState(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: int
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    instance_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        description="New at every start: the emulator keeps its state in memory, so each start is a "
        "new, empty stack (with the same resource names)",
    )
    region: str = REGION
    endpoint_url: str = Field(description="The AWS emulator; pass as endpoint_url / --endpoint-url")
    api_url: str
    api_key: str
    resources: LocalResources
    config_path: str | None = None
    child_pids: dict[str, int] = Field(default_factory=dict, description="Processes the stack started")
    aws_access_key_id: str = "testing"
    aws_secret_access_key: str = "testing"  # noqa: S105 - the emulator accepts any credentials


class StateLock:
    """Held for the life of an ``autotag local``; a second holder gets :class:`AlreadyRunningError`."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.lock_path = state_path.with_name(state_path.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.lock_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AlreadyRunningError(
                f"autotag local is already running (pid {holder}, state file {self.state_path}); "
                "stop it first or use another --state"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.seek(0)
                self._file.truncate()
            self._file.close()
            self._file = None


def write_state(path: Path, state: LocalState) -> None:
    """Atomically (write + rename), readable only by the user: it holds the API key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(state.model_dump_json(indent=2))
    temporary.replace(path)


def remove_state(path: Path, *, pid: int) -> None:
    """Remove the state file if it is still ours."""
    with contextlib.suppress(LocalStackError):
        if read_state(path, check_running=False).pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(path: Path | None = None, *, check_running: bool = True) -> LocalState:
    file = path or DEFAULT_STATE_PATH
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LocalStackError(
            f"no local stack state at {file}: start one with `autotag local` (or pass --state / --stack)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise LocalStackError(f"cannot read local stack state {file}: {exc}") from None
    try:
        state = LocalState.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"local stack state {file} is invalid: {exc.error_count()} problem(s)") from None
    if check_running and not pid_alive(state.pid):
        raise LocalStackError(
            f"the local stack in {file} (pid {state.pid}) is not running; start it with `autotag local`"
        )
    return state
