"""What a user sees from the command line: `ai-gateway --version`, `--help`, `make ari-ops`, bootstrap."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import __version__
from app.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_version_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ai-gateway {__version__}"


def test_serve_help_explains_host_and_port_with_their_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "address to listen on" in text and "(default: 127.0.0.1)" in text
    assert "TCP port" in text and "(default: 8000)" in text


def test_ari_ops_without_the_spec_folder_says_what_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "ari-api-docs"
    result = subprocess.run(
        [sys.executable, "-m", "app.vendor.ari.generate", str(missing), str(tmp_path / "out.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], result.stderr
    assert not (tmp_path / "out.json").exists()


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_bootstrap_installs_poetry_with_pipx_not_into_the_system_python(tmp_path: Path) -> None:
    """With pipx on PATH and no Poetry, bootstrap uses pipx and says so (stubs record the calls)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "bootstrap", repo / "scripts" / "bootstrap")
    stubs, pipx_bin, calls = tmp_path / "stubs", tmp_path / "pipx-bin", tmp_path / "calls.log"
    stubs.mkdir()
    pipx_bin.mkdir()
    poetry_stub = f'echo "poetry $*" >> {calls}\n[ "$1" = install ] && mkdir -p .venv\nexit 0\n'
    _stub(
        stubs / "pipx",
        f'echo "pipx $*" >> {calls}\n'
        f'if [ "$1" = environment ]; then echo {pipx_bin}; exit 0; fi\n'
        f"if [ \"$1\" = install ]; then printf '%s' '#!/bin/sh\n{poetry_stub}' > {pipx_bin}/poetry; "
        f"chmod +x {pipx_bin}/poetry; fi\nexit 0\n",
    )
    # python3 is left reachable; pip is told it may not install anything anywhere.
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "PIP_NO_INDEX": "1",
        "PIP_REQUIRE_VIRTUALENV": "1",
    }
    result = subprocess.run(
        ["bash", str(repo / "scripts" / "bootstrap")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = calls.read_text()
    assert "pipx install poetry" in recorded
    assert "poetry install --no-interaction --with dev" in recorded
    assert "installing it with pipx" in result.stdout
    assert (repo / ".venv" / ".installed").exists()
    assert "pip install" not in recorded


def test_bootstrap_never_names_a_package_index() -> None:
    text = (REPO / "scripts" / "bootstrap").read_text()
    assert "--index-url" not in text and "--extra-index-url" not in text
    assert "python3 -m pip install" not in text, "Poetry must not go into the system interpreter"
    assert os.access(REPO / "scripts" / "bootstrap", os.R_OK)
