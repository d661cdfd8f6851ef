"""Starting and stopping `autotag local`: a second instance or a taken port fails with one clear
line; Ctrl-C stops everything it started and removes its state file."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from autotag.local.state import pid_alive, read_state

from tests.e2e.conftest import run_cli, start_stack, wait_for

pytestmark = pytest.mark.e2e


def test_second_instance_and_taken_ports_fail_clearly_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    stack = start_stack(tmp_path / "first")
    state = read_state(stack.state_path)
    children = list(state.child_pids.values())
    assert len(children) >= 4  # the emulator and one worker per function at least
    assert all(pid_alive(pid) for pid in children)

    again = run_cli(
        "local", "--aws-port", "0", "--api-port", "0", "--state", str(stack.state_path), timeout=60
    )
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0, again.stderr  # one line
    assert "already running" in again.stderr
    assert str(state.pid) in again.stderr

    aws_port = int(state.endpoint_url.rsplit(":", 1)[1])
    taken = run_cli(
        "local", "--aws-port", str(aws_port), "--api-port", "0", "--state", str(tmp_path / "b.json")
    )
    assert taken.returncode == 1
    assert f"port {aws_port} on 127.0.0.1 is already in use" in taken.stderr
    assert taken.stderr.strip().count("\n") == 0, taken.stderr

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        api_port = holder.getsockname()[1]
        busy = run_cli(
            "local", "--aws-port", "0", "--api-port", str(api_port), "--state", str(tmp_path / "c.json")
        )
    assert busy.returncode == 1
    assert (
        f"port {api_port} on 127.0.0.1 is already in use; choose another API (--api-port) port" in busy.stderr
    )
    assert not (tmp_path / "b.json").exists()
    assert not (tmp_path / "c.json").exists()

    assert stack.stop(signal.SIGINT) == 0
    wait_for(lambda: not any(pid_alive(pid) for pid in children), timeout=10, what="every child to exit")
    assert not stack.state_path.exists()
    assert "autotag local: stopped" in stack.log()


def test_children_do_not_outlive_a_killed_stack(tmp_path: Path) -> None:
    stack = start_stack(tmp_path / "killed")
    children = list(read_state(stack.state_path).child_pids.values())
    os.kill(stack.process.pid, signal.SIGKILL)
    stack.process.wait(10)
    wait_for(lambda: not any(pid_alive(pid) for pid in children), timeout=15, what="orphans to exit")
    time.sleep(0.2)
    # The lock died with the process: a new stack starts on the same state file.
    restarted = start_stack(tmp_path / "killed")
    assert restarted.stop() == 0
