"""The wheel, the Docker image and docker-compose.yml, and the command the README documents."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def readme_container_command() -> list[str]:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- container-command -->\s*```sh\n(.+?)\n```", text)
    assert match, "README lost its marked container command block"
    return match.group(1).split()


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_is_valid() -> None:
    env = {**os.environ, "MOTIONHUB_ADMIN_TOKEN": "x" * 24}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == {"mosquitto", "camera", "motionhub"}
    for name in ("motionhub", "camera"):
        service = rendered["services"][name]
        assert service["read_only"] is True, name
        assert any(mount.split(":")[0] == "/tmp" for mount in service["tmpfs"]), name


def test_compose_refuses_to_run_without_a_token() -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed")
    env = {k: v for k, v in os.environ.items() if k != "MOTIONHUB_ADMIN_TOKEN"}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "MOTIONHUB_ADMIN_TOKEN" in result.stderr


def test_container_command_matches_readme_and_dockerfile() -> None:
    expected = readme_container_command()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["motionhub"]["command"] == expected
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.+\])$", dockerfile, re.M)
    assert cmd is not None
    assert yaml.safe_load(cmd.group(1)) == expected


def test_docker_config_file_is_valid_for_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.settings_file import parse_settings

    monkeypatch.setenv(
        "MOTIONHUB_SERVER__AUTH__TOKENS", '[{"token": "' + "t" * 20 + '", "role": "admin"}]'
    )
    s = parse_settings((ROOT / "config" / "docker.yml").read_text(), "docker.yml")
    assert s.server.auth.tokens[0].role == "admin"
    assert s.mqtt is not None


def test_ci_runs_the_readme_test_command() -> None:
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    assert "\nscripts/test\n" in (ROOT / "README.md").read_text()


def test_docker_build_context_leaves_out_what_git_ignores() -> None:
    """The venv, caches and data directories never go to the Docker daemon or into the image."""

    def patterns(name: str) -> set[str]:
        lines = (ROOT / name).read_text().splitlines()
        return {ln.strip().removeprefix("**/") for ln in lines if ln.strip() and ln[0] != "#"}

    ignored_by_docker = patterns(".dockerignore")
    assert ".git" in ignored_by_docker
    assert patterns(".gitignore") <= ignored_by_docker


def test_image_data_directory_is_private_to_the_service_user() -> None:
    """The server warns when its storage directory is open to other users (docs/security.md)."""
    storage = yaml.safe_load((ROOT / "config" / "docker.yml").read_text())["storage"]["path"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)$", dockerfile, re.M)
    assert user is not None
    made = re.search(rf"install -d -m (\d+) -o (\S+) {re.escape(storage)}\b", dockerfile)
    assert made is not None, f"the Dockerfile does not create {storage} with a mode and owner"
    assert int(made.group(1), 8) & 0o077 == 0
    assert made.group(2) == user.group(1)


def test_wheel_ships_the_server_with_its_metadata(tmp_path: Path) -> None:
    """The wheel builds without deprecated metadata, carries the license as an SPDX expression,
    the dashboard and the command, and none of the tests."""
    import shutil
    import sys
    import tomllib
    import zipfile

    # From a copy of the project's files: building in the checkout would reuse whatever an
    # earlier build left in build/, so a file no longer packaged could still be found.
    src = tmp_path / "src"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    assert "deprecated" not in build.stderr, build.stderr
    (wheel,) = tmp_path.glob("motionhub-*.whl")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA")).rpartition("/")[0]
        metadata = zf.read(f"{info}/METADATA").decode()
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    assert f"\nLicense-Expression: {project['license']}\n" in metadata
    assert f"motionhub = {project['scripts']['motionhub']}" in entry_points
    static = ROOT / "server" / "dashboard" / "static"
    shipped = {p.relative_to(ROOT).as_posix() for p in static.rglob("*") if p.is_file()}
    assert shipped, "no dashboard files found"
    assert shipped <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "config/"))]
    # Typed for the code that imports it (the detector is a library too), and licensed.
    assert {"detector/py.typed", "server/py.typed", "clients/py.typed"} <= names
    assert f"{info}/licenses/LICENSE" in names


def test_compose_keeps_an_anonymous_broker_on_loopback() -> None:
    """Whoever may publish to the broker can switch detection off (docs/security.md)."""
    broker = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["mosquitto"]
    assert any("no-auth" in part for part in broker["command"])
    assert broker["ports"]
    for mapping in broker["ports"]:
        assert str(mapping).startswith("127.0.0.1:"), mapping


def test_compose_runs_the_server_on_a_read_only_root() -> None:
    """The server writes only its data volume, and SQLite's temporary files to /tmp; a
    read-only root keeps a compromised process from changing the image's code."""
    server = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["motionhub"]
    assert server["read_only"] is True
    assert [mount.split(":")[0] for mount in server["tmpfs"]] == ["/tmp"]
    assert any(volume.endswith(":/data") for volume in server["volumes"])


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_constraints_pin_every_declared_dependency_within_its_range() -> None:
    """scripts/bootstrap and the image install from constraints.txt: each requirement of
    pyproject.toml (extras included) has a pin there, and the pin lies in the declared range."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    pins = _pins()
    for spec in declared:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt (run scripts/lock)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}"
        )


def test_environment_matches_the_constraints() -> None:
    """The tests run on exactly the pinned libraries (scripts/test bootstraps with them)."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {
        name: (pin, installed[name])
        for name, pin in _pins().items()
        if name in installed and installed[name] != pin
    }
    assert not wrong, f"installed versions differ from constraints.txt (pin, installed): {wrong}"


def test_image_and_bootstrap_install_with_the_constraints() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY .*\bconstraints\.txt\b", dockerfile, re.M)
    assert "pip install -c constraints.txt ." in dockerfile
    assert "-c constraints.txt" in (ROOT / "scripts" / "bootstrap").read_text()
