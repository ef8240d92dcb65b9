"""Safe by default: a local-only server, Ray's token auth on, no pickled code, resolved paths, no leaked secrets.

(That a fresh local Ray's auth token leaks nowhere is checked by test_cli's run on a fresh local Ray.)
"""

import ast
import glob
import json
import os
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from engine import RunConfig, start
from engine.core.config import ConfigError
from engine.core.errors import one_line, redact
from tests.conftest import finish

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "app.py")
SECRET = "s3cr3t-9f8e7d6c5b4a"


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PLAYGROUND_OBJECT_STORE_MB": "300", **env},
    )  # fmt: skip


def test_the_server_listens_on_localhost_only_with_xsrf_protection():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, ".streamlit", "config.toml"), "rb") as f:
        config = tomllib.load(f)
    server = config["server"]
    assert server["address"] == "127.0.0.1"  # exposing it takes an explicit --server.address
    assert server["enableXsrfProtection"] is True and server["enableCORS"] is True
    assert config["browser"]["gatherUsageStats"] is False


def test_ray_token_authentication_stays_on(ray_local):
    from ray._raylet import AuthenticationMode, get_authentication_mode

    sources = [p for d in ("engine", "ui", "pages", "bench") for p in glob.glob(os.path.join(ROOT, d, "*.py"))]
    for path in sources + [APP]:
        with open(path) as f:
            assert "RAY_AUTH_MODE" not in f.read(), path  # nothing of ours turns it off
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        pytest.skip("this machine's environment turns Ray's token auth off")
    assert get_authentication_mode() == AuthenticationMode.TOKEN  # the Ray the engine started uses a token


def test_nothing_typed_in_the_browser_is_executed():
    """The UI's values only become RunConfig fields: no eval, exec, shell or unpickling anywhere in the UI."""
    runners = {"subprocess", "pickle", "marshal", "shelve", "importlib"}
    for path in [APP, *glob.glob(os.path.join(ROOT, "ui", "*.py")), *glob.glob(os.path.join(ROOT, "pages", "*.py"))]:
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = {
                    (a.name if isinstance(node, ast.Import) else node.module or "").split(".")[0] for a in node.names
                }
                assert not runners & names, f"{path} imports {names}"
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile", "__import__"}, f"{path}: {node.func.id}()"
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner, call = node.func.value, node.func.attr
                if isinstance(owner, ast.Name) and owner.id == "os":
                    assert not call.startswith(("system", "popen", "exec", "spawn", "fork")), f"{path}: os.{call}()"


def test_a_pickle_bomb_weights_file_is_refused_in_one_line_without_running(ray_local, tiny, tmp_path):
    import torch

    marker = tmp_path / "exploded"

    class Bomb:  # unpickling this would run a shell command
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bomb = tmp_path / "weights.pth"
    torch.save({"fc.weight": Bomb()}, bomb)
    summary = finish(start(tiny.replace(weights_file=str(bomb))))  # loaded inside a Ray worker, as in every run
    assert summary["status"] == "failed"
    assert summary["error"] == (
        "weights file refused: it holds more than tensors (posix.system), which could run code; give a plain state dict"
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    ("typed", "resolved", "rule"),
    [
        ("../../etc/passwd", "/etc/passwd", "must be a folder of images, not a file"),
        ("/etc/passwd", "/etc/passwd", "must be a folder of images, not a file"),
        ("link-to-passwd", "/etc/passwd", "must be a folder of images, not a file"),
        ("../../no/such/folder", "/no/such/folder", "must be 'synthetic', 'jpeg', or an existing folder"),
        ("~/no-such-folder-here", os.path.expanduser("~/no-such-folder-here"), "must be 'synthetic'"),
        ("images\0/../../etc", None, "must not contain a NUL character"),
    ],
)
def test_a_data_path_is_resolved_checked_and_reported_in_one_line(typed, resolved, rule, tmp_path, monkeypatch):
    if typed == "link-to-passwd":
        os.symlink("/etc/passwd", tmp_path / typed)
        monkeypatch.chdir(tmp_path)
    else:
        monkeypatch.chdir("/usr/lib")  # relative paths are read from the app's folder: here two levels below /
    with pytest.raises(ConfigError) as refused:
        RunConfig(data=typed).validate()
    message = str(refused.value)
    assert message.startswith(f"data {rule}") and "\n" not in message
    if resolved:
        assert f": {resolved} (got {typed!r})" in message  # what would really be read, beside what was typed


def test_a_folder_reached_through_dot_dot_is_accepted_as_resolved(tmp_path, monkeypatch):
    (tmp_path / "images").mkdir()
    (tmp_path / "app").mkdir()
    monkeypatch.chdir(tmp_path / "app")
    assert RunConfig(data="../images").validate().data == "../images"


def test_the_playground_refuses_a_file_path_in_one_line_and_starts_nothing(ray_local):
    import ui.session

    at = AppTest.from_file(APP, default_timeout=120).run()
    before = len(ui.session.shared_runner().runs)
    at.radio(key="data").set_value("Folder or URI").run()
    at.text_input(key="data_path").input("/etc/passwd").run()
    next(b for b in at.button if b.label == "Launch").click().run()
    (refused,) = [e.value for e in at.error if not e.value.startswith("Run failed")]  # not an earlier run's
    assert refused == "data must be a folder of images, not a file: /etc/passwd (got '/etc/passwd')"
    assert len(ui.session.shared_runner().runs) == before


def test_credentials_are_masked_wherever_they_would_be_shown():
    assert redact("could not join Ray at ray://admin:hunter2@head:10001: timeout") == (
        "could not join Ray at ray://***@head:10001: timeout"
    )
    assert redact("https://bucket/images?token=abc&x=1") == "https://bucket/images?token=***&x=1"
    assert redact("HEAD:6379") == "HEAD:6379" and redact("ray://head:10001") == "ray://head:10001"
    assert RunConfig(address=f"ray://admin:{SECRET}@head:10001").to_dict()["address"] == "ray://***@head:10001"
    assert SECRET not in one_line(ValueError(f"Invalid address format: admin:{SECRET}@head:6379"))


@pytest.mark.subprocess
def test_a_secret_in_a_ray_address_reaches_no_store_summary_or_log(tmp_path):
    db, out = tmp_path / "runs.sqlite", tmp_path / "run.json"
    result = cli("run", "--address", f"admin:{SECRET}@127.0.0.1:1", "--images", "16", "--json", str(out),
                 PLAYGROUND_DB=str(db))  # fmt: skip
    assert result.returncode == 1 and json.loads(out.read_text())["status"] == "failed"
    for text in [result.stdout, result.stderr, out.read_text()] + [p.read_bytes().decode("latin-1") for p in
                                                                   tmp_path.glob("runs.sqlite*")]:  # fmt: skip
        assert SECRET not in text
