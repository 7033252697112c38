"""The systemd units in ``deploy/systemd``: sandboxed, stopping gracefully, running real commands.

The units are read as systemd reads them (one ``key=value`` a line, a key
given again adds to it), and checked by ``systemd-analyze`` where it is
installed. That Herald runs under the units' MemoryDenyWriteExecute is
tested in ``tests/e2e/test_systemd_sandbox.py``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from herald.cli import main
from herald.config import Settings

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
ENV_EXAMPLE = UNITS / "herald.env.example"
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
#: Each service and the ``herald`` command it runs.
COMMANDS = {
    "herald.service": "up",
    "herald-api.service": "api",
    "herald-worker@.service": "worker",
    "herald-backup.service": "backup",
}
DAEMONS = [name for name, command in COMMANDS.items() if command != "backup"]
DATA = "/var/lib/herald"
SANDBOX = {
    "User": "herald",
    "Group": "herald",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
    "StateDirectory": "herald",
}

Unit = dict[str, dict[str, list[str]]]


def parse(name: str) -> Unit:
    """Sections of key -> every value given, in order."""
    unit: Unit = defaultdict(lambda: defaultdict(list))
    section = ""
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), "continued lines are not read here"
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, equals, value = line.partition("=")
        assert equals and section, f"{name}: not a key=value line in a section: {line!r}"
        unit[section][key.strip()].append(value.strip())
    return unit


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"not a time span: {value}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def environment_example() -> dict[str, str]:
    """The example environment file's settings, the commented-out ones too, unquoted as
    systemd reads them."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?(HERALD_[A-Z0-9_]+)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2).removeprefix('"').removesuffix('"')
    return found


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_sandboxed(name: str) -> None:
    service = parse(name)["Service"]
    for key, value in SANDBOX.items():
        assert service[key] == [value], f"{name}: {key}"
    families = " ".join(service["RestrictAddressFamilies"]).split()
    assert families and set(families) <= {"AF_UNIX", "AF_INET", "AF_INET6"}
    writable = [p.lstrip("-") for p in " ".join(service["ReadWritePaths"]).split()]
    assert DATA in writable and all(p.startswith("/var/") for p in writable)
    assert service["EnvironmentFile"][0] == "/etc/herald/herald.env"


def test_the_units_cover_every_service_shipped() -> None:
    assert set(SERVICES) == set(COMMANDS)
    timer = parse("herald-backup.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == ["timers.target"]


@pytest.mark.parametrize("name", DAEMONS)
def test_daemons_restart_on_failure_and_stop_gracefully(name: str) -> None:
    unit = parse(name)
    service = unit["Service"]
    assert service["Type"] == ["exec"] and service["Restart"] == ["on-failure"]
    # SIGTERM to Herald alone: it drains, and a supervisor passes it on to its children.
    assert service["KillSignal"] == ["SIGTERM"] and service["KillMode"] == ["mixed"]
    grace = float(environment_example()["HERALD_SHUTDOWN_GRACE"])
    assert grace == Settings.model_fields["shutdown_grace"].default
    # The supervisor waits grace + 15 s for its children before it kills them.
    assert seconds(service["TimeoutStopSec"][0]) >= grace + 20
    connections = Settings.model_fields["max_connections"].default
    assert int(service["LimitNOFILE"][0]) >= 2 * connections
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def herald_argv(line: str) -> list[str] | None:
    """The arguments after ``herald`` in an Exec line, as systemd and the shell pass them."""
    line = line.replace("%%", "\0").replace("%i", "1").replace("%H", "host").replace("\0", "%")
    argv = shlex.split(line.replace("$$", "$"))
    if Path(argv[0]).name in ("sh", "bash") and argv[1] == "-c":
        argv = shlex.split(argv[2])
        argv = argv[1:] if argv[0] == "exec" else argv
    return argv[1:] if Path(argv[0]).name == "herald" else None


@pytest.mark.parametrize("name", SERVICES)
def test_exec_lines_run_real_herald_commands(name: str) -> None:
    service = parse(name)["Service"]
    [start] = service["ExecStart"]
    argv = herald_argv(start)
    assert argv is not None and argv[0] == COMMANDS[name], start
    assert start.split()[0] in ("/opt/herald/bin/herald", "/bin/sh")
    for line in service["ExecStartPre"] + service["ExecStart"] + service["ExecStartPost"]:
        argv = herald_argv(line)
        if argv is None:
            continue
        helped = CliRunner().invoke(main, [argv[0], "--help"])
        assert helped.exit_code == 0, helped.output
        command = main.get_command(click.Context(main), argv[0])
        assert command is not None
        command.make_context(argv[0], argv[1:])  # raises on an unknown option or argument


def test_the_environment_example_names_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    names = set()
    for field in Settings.model_fields.values():
        names |= {a for a in getattr(field.validation_alias, "choices", ()) if isinstance(a, str)}
    example = environment_example()
    assert set(example) <= names
    for key, value in example.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.sqlite_path is not None and Path(settings.sqlite_path).parent == Path(DATA)
    assert Path(settings.admin_key_file).parent == Path(DATA)


def test_a_shell_reads_the_environment_example_as_systemd_does(tmp_path: Path) -> None:
    """README's ``herald`` shell function sources the file for the operator commands."""
    uncommented = tmp_path / "herald.env"
    uncommented.write_text(ENV_EXAMPLE.read_text().replace("\n#HERALD_", "\nHERALD_"))
    shown = subprocess.run(
        ["sh", "-c", 'set -a; . "$0"; env', str(uncommented)],
        env={}, capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    read = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    example = environment_example()
    assert {k: read.get(k) for k in example} == example


@pytest.fixture
def installed_units(tmp_path: Path) -> Path:
    """The units with ``/opt/herald/bin/herald`` pointing at an executable that exists here,
    since ``systemd-analyze verify`` checks every command it would run."""
    herald = tmp_path / "bin" / "herald"
    herald.parent.mkdir()
    herald.write_text("#!/bin/sh\n")
    herald.chmod(0o755)
    for unit in UNITS.glob("herald*.*"):
        if unit.suffix in (".service", ".timer"):
            text = unit.read_text().replace("/opt/herald/bin/herald", str(herald))
            (tmp_path / unit.name).write_text(text)
    return tmp_path


def systemd_analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return subprocess.run(
        ["systemd-analyze", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_systemd_analyze_verify_finds_nothing_to_say(installed_units: Path) -> None:
    names = [n.replace("@.", "@1.") for n in SERVICES] + ["herald-backup.timer"]
    done = systemd_analyze("verify", "--man=no", *names, cwd=installed_units)
    said = [line for line in (done.stdout + done.stderr).splitlines() if "herald" in line]
    assert done.returncode == 0 and said == [], done.stdout + done.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_systemd_analyze_security_rates_the_exposure_low(installed_units: Path, name: str) -> None:
    done = systemd_analyze("security", "--offline=true", f"./{name}", cwd=installed_units)
    if done.returncode != 0 and "offline" in done.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit offline (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.0, done.stdout
