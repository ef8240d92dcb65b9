"""RunConfig refuses bad input with one line naming the field; good input passes."""

import pytest

from engine.core.config import ConfigError, RunConfig


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -3}, "batch_size"),
        ({"batch_size": 10**9}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"concurrency": 0}, "concurrency"),
        ({"images": 0}, "images"),
        ({"block_size_mb": 0}, "block_size_mb"),
        ({"num_gpus": -1}, "num_gpus"),
        ({"num_gpus": 1.5}, "num_gpus"),
        ({"num_gpus": 99}, "num_gpus"),
        ({"precision": "int3"}, "precision"),
        ({"pipeline": "turbo"}, "pipeline"),
        ({"model": "alexnet9000"}, "model"),
        ({"data": ""}, "data"),
        ({"data": "/no/such/folder"}, "data"),
        ({"weights_file": "/no/such/file.pth"}, "weights_file"),
        ({"object_store_limit_mb": 1}, "object_store_limit_mb"),
        ({"image_size": 4}, "image_size"),
    ],
)
def test_bad_values_name_the_field_in_one_line(changes, field):
    with pytest.raises(ConfigError) as err:
        RunConfig(**changes).validate()
    message = str(err.value)
    assert message.startswith(field)
    assert "\n" not in message


def test_defaults_and_fractional_gpus_are_valid(tmp_path):
    assert RunConfig().validate().pipeline == "actor"
    assert RunConfig(num_gpus=0.25, precision="bf16", data=str(tmp_path)).validate().num_gpus == 0.25
    assert RunConfig(data="s3://bucket/images").validate().data.startswith("s3://")


def test_output_must_be_a_writable_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="^output"):
        RunConfig(output=str(blocker)).validate()
    assert RunConfig(output=str(tmp_path / "new" / "dir")).validate().output


def test_round_trip_and_unknown_fields():
    config = RunConfig(batch_size=64)
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown config field"):
        RunConfig.from_dict({"batchsize": 3})
