"""The files and environment one private RabbitMQ node runs with, all inside one folder.

Every path RabbitMQ would otherwise take from ``/etc/rabbitmq``, ``/var/lib/rabbitmq`` or
``$HOME`` is pointed into the node's folder, so that a node started by the tests reads no
system configuration, writes no system state (nothing root-owned is left behind when it runs
as root) and meets no other node (its own Erlang cookie, node name and epmd port).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NodeLayout", "NodePorts"]

#: Variables of the caller's environment that must not reach the node: they would point it at
#: another node's files or ports, or its Erlang at our Python.
_ENV_DROP_PREFIXES = ("RABBITMQ_", "ERL_")
_ENV_DROP = frozenset({"CONF_ENV_FILE", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"})


@dataclass(frozen=True)
class NodePorts:
    """The three loopback ports of one node: AMQP clients, Erlang distribution (the CLI tools
    talk to the node through it) and the node's private epmd (Erlang's port mapper)."""

    amqp: int
    dist: int
    epmd: int
    management: int | None = None


@dataclass(frozen=True)
class NodeLayout:
    """Paths of one node under ``root``; :meth:`write` creates them."""

    root: Path
    node_name: str

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def mnesia_base(self) -> Path:
        return self.root / "mnesia"

    @property
    def log_base(self) -> Path:
        return self.root / "log"

    @property
    def config_file(self) -> Path:
        return self.root / "rabbitmq.conf"

    @property
    def broker_output(self) -> Path:
        """The broker's stdout and stderr (boot failures land here before the log exists)."""
        return self.root / "broker.out"

    @property
    def node_log(self) -> Path:
        return self.log_base / f"{self.node_name}.log"

    def write(
        self,
        *,
        ports: NodePorts,
        user: str,
        password: str,
        plugins: Sequence[str],
        settings: Mapping[str, str],
    ) -> None:
        """Create the folders, the config, the plugin list and the Erlang cookie."""
        for folder in (self.home, self.mnesia_base, self.log_base, self.root / "conf.d"):
            folder.mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq-env.conf").write_text("", encoding="utf-8")
        (self.root / "enabled_plugins").write_text(
            "[" + ",".join(plugins) + "].\n", encoding="utf-8"
        )
        lines = {
            "listeners.tcp.default": f"127.0.0.1:{ports.amqp}",
            "default_user": user,
            "default_pass": password,
            # The default user may log in from 127.0.0.1 only anyway (the listener's address);
            # RabbitMQ's own rule would refuse it if it were named "guest" and came elsewhere.
            "loopback_users": "none",
            # Sent in every connection.start: the readiness probe recognises the node by it
            # (the default is the node's short name with the machine's host name).
            "cluster_name": self.node_name,
            **({"management.tcp.ip": "127.0.0.1", "management.tcp.port": str(ports.management)}
               if ports.management is not None else {}),
            **settings,
        }
        self.config_file.write_text(
            "".join(f"{key} = {value}\n" for key, value in lines.items()), encoding="utf-8"
        )
        self.config_file.chmod(0o600)  # it holds the password
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():  # a restart keeps the node's cookie
            cookie.write_text(secrets.token_hex(20), encoding="utf-8")
            cookie.chmod(0o400)  # Erlang refuses a cookie others can read

    def environment(self, ports: NodePorts) -> dict[str, str]:
        """The environment for ``rabbitmq-server``, ``rabbitmqctl`` and epmd of this node."""
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _ENV_DROP and not key.startswith(_ENV_DROP_PREFIXES)
        }
        env.update(
            {
                "HOME": str(self.home),  # the Erlang cookie's folder
                "RABBITMQ_NODENAME": self.node_name,
                "RABBITMQ_DIST_PORT": str(ports.dist),
                "ERL_EPMD_PORT": str(ports.epmd),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_MNESIA_BASE": str(self.mnesia_base),
                "RABBITMQ_LOG_BASE": str(self.log_base),
                "RABBITMQ_CONFIG_FILE": str(self.config_file),
                "RABBITMQ_CONFIG_FILES": str(self.root / "conf.d"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.root / "broker.pid"),
                # Distribution on loopback only, and never a second epmd: ours runs already.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                    "-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false"
                ),
            }
        )
        return env
