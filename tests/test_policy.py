"""The operator's policy: what a shared server's browsers may reach and ask for; no file means one user, as before."""

import os

import pytest

from engine import RunConfig
from engine.core import policy
from engine.core.policy import PolicyError


def shared(tmp_path, text: str) -> policy.Policy:
    path = tmp_path / "playground.toml"
    path.write_text(text)
    return policy.load({"PLAYGROUND_CONFIG": str(path)})


def test_no_configuration_is_one_user_with_everything_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(policy, "DEFAULT_FILE", str(tmp_path / "none.toml"))
    found = policy.load({})
    assert not found.shared and found.is_operator(None)
    assert policy.resolve_address(found, "10.0.0.9:6379") == "10.0.0.9:6379"
    policy.check_run(found, RunConfig(data="/etc"))  # (the config itself still refuses a file or a missing folder)


def test_a_shared_server_reaches_only_its_named_clusters(tmp_path):
    found = shared(tmp_path, '[playground]\nclusters = { gpu = "10.0.0.5:6379" }\n')
    assert policy.resolve_address(found, "gpu") == "10.0.0.5:6379"
    assert policy.resolve_address(found, "10.0.0.5:6379") == "10.0.0.5:6379"
    assert policy.resolve_address(found, "") is None and policy.resolve_address(found, "local") is None
    with pytest.raises(PolicyError, match=r"^Ray address '127.0.0.1:6379' is not one of this server's clusters"):
        policy.resolve_address(found, "127.0.0.1:6379")
    assert shared(tmp_path, "[playground]\nany_address = true\n").any_address


def test_data_outside_the_roots_a_link_escaping_them_or_a_scheme_not_allowed_is_refused(tmp_path):
    images = tmp_path / "images"
    (images / "cats").mkdir(parents=True)
    os.symlink("/etc", images / "escape")
    found = shared(tmp_path, f'[playground]\ndata_roots = ["{images}"]\nuri_schemes = ["s3"]\n')
    policy.check_data(found, str(images / "cats"))
    policy.check_data(found, "s3://bucket/cats")
    policy.check_data(found, "jpeg")
    refusals = [("/etc", "outside"), (str(images / "escape"), "/etc is outside"),
                ("http://evil/x", "http:// is not allowed"), ("local:///etc", "local:// is not allowed")]  # fmt: skip
    for refused, why in refusals:
        with pytest.raises(PolicyError, match=why) as err:
            policy.check_data(found, refused)
        assert "\n" not in str(err.value)


def test_limits_on_images_batch_memory_and_the_queue(tmp_path):
    found = shared(tmp_path, "[playground]\nmax_images = 1000\nmax_batch_mb = 512\nmax_queued_per_person = 1\n")
    with pytest.raises(PolicyError, match="images 1,000,000 is more than this server allows"):
        policy.check_run(found, RunConfig(images=1_000_000))
    with pytest.raises(PolicyError, match="batch 8192 at 1024 px is about 98,304 MB"):
        policy.check_run(found, RunConfig(images=100, batch_size=8192, image_size=1024))

    class Waiting:
        def __init__(self, owner):
            self.owner = owner

    policy.check_queue(found, "ada", [Waiting("bob")])
    with pytest.raises(PolicyError, match="you already have 1 run"):
        policy.check_queue(found, "ada", [Waiting("ada")])
    with pytest.raises(PolicyError, match="runs are already waiting"):
        policy.check_queue(found, "ada", [Waiting("x")] * found.max_queued)


def test_sign_in_settings_and_operators(tmp_path):
    found = shared(tmp_path, '[playground]\npasscode = "s3same"\noperators = ["ada"]\n')
    assert found.sign_in == "passcode" and found.is_operator("ada") and not found.is_operator("bob")
    with pytest.raises(PolicyError, match="needs a passcode"):
        shared(tmp_path, '[playground]\nsign_in = "passcode"\n')
    assert policy.load({"PLAYGROUND_PASSCODE": "x", "PLAYGROUND_CONFIG": ""}).sign_in == "passcode"


def test_serving_beyond_this_machine_needs_sign_in_unless_the_operator_allows_it(tmp_path, monkeypatch, capsys):
    from engine.core.policy import serving_refusal
    from ui import preflight

    open_server = shared(tmp_path, "[playground]\n")
    assert serving_refusal(policy.Policy(), "127.0.0.1") is None
    assert serving_refusal(open_server, "0.0.0.0").startswith("refusing to serve on 0.0.0.0 without sign-in")
    assert serving_refusal(shared(tmp_path, '[playground]\npasscode = "p"\n'), "0.0.0.0") is None
    assert serving_refusal(shared(tmp_path, "[playground]\nallow_public_without_sign_in = true\n"), "0.0.0.0") is None
    monkeypatch.setenv("PLAYGROUND_CONFIG", str(tmp_path / "playground.toml"))
    (tmp_path / "playground.toml").write_text("[playground]\n")
    assert preflight.main(["--server.address", "0.0.0.0"]) == 2
    assert capsys.readouterr().err.startswith("error: refusing to serve on 0.0.0.0 without sign-in")
    assert preflight.main(["--server.address=127.0.0.1"]) == 0 and preflight.server_address([]) == "127.0.0.1"
