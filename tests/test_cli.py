"""What a user sees from the command line: `ai-gateway --version`, `--help`, `make ari-ops`, bootstrap."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
import wave
from pathlib import Path

import pytest

from app import __version__
from app.cli import main

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

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


@pytest.mark.slow
def test_demo_voice_offline_prints_the_conversation_and_writes_the_call_as_wav(
    redis_prefix: str, tmp_path: Path
) -> None:
    """`ai-gateway demo --voice` with no key: espeak-ng caller, pocketsphinx, offline model, espeak-ng."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(PYTHONPATH=str(REPO), REDIS_KEY_PREFIX=redis_prefix)
    wav_path = tmp_path / "call.wav"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--voice", "--wav", str(wav_path)],
        cwd=tmp_path,  # no .env of the repository: no key, the offline engines
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    assert "STT pocketsphinx (offline, low accuracy); TTS espeak-ng (offline)" in out
    assert "agent:        Hello, this is the Example Shop order line. How can I help?" in out
    assert "caller said:  Where is order four two" in out
    # The recognised words reached the model, which called the tool with the order number.
    assert re.search(r"STT heard:    \S.*", out), out
    assert "tool call:    check_order({'order_id': '42'}) -> ok 200" in out
    assert 'The tool check_order returned: {"order_id":"42","status":"shipped"' in out
    assert re.search(
        r"latencies:    stt final \d+ ms, llm first sentence \d+ ms, tts first audio \d+ ms, first frame sent \d+ ms",
        out,
    ), out
    assert "Dialplan gets: AI_STATUS=OK AI_END_REASON=agent_ended AI_TURNS=2" in out
    assert f"Recording (both sides, 16 kHz WAV): {wav_path}" in out
    with wave.open(str(wav_path), "rb") as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    seconds = len(pcm) / 2 / rate
    assert rate == 16000 and seconds > 6, seconds
    # Not silent: loud 100 ms windows cover the greeting, both caller lines and the answers.
    windows = [pcm[i : i + 3200] for i in range(0, len(pcm), 3200)]
    loud = sum(1 for chunk in windows if audioop.rms(chunk, 2) > 300)
    assert loud * 0.1 > 5, f"only {loud * 0.1:.1f} s of sound in {seconds:.1f} s"
