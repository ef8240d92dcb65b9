"""Property test over the whole config space: every value is either accepted or refused in one line."""

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.config import ConfigError, RunConfig

ints = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=True), st.none(), st.text(max_size=5), st.booleans()
)
configs = st.builds(
    RunConfig,
    model=st.one_of(st.sampled_from(["resnet18", "vit_b_16"]), st.text(max_size=12)),
    pipeline=st.one_of(st.sampled_from(["naive", "actor"]), st.text(max_size=8)),
    images=ints, image_size=ints, batch_size=ints, concurrency=ints, block_size_mb=ints,
    num_gpus=st.one_of(st.floats(-5, 20), st.just(float("nan")), st.integers(-3, 50)),
    precision=st.one_of(st.sampled_from(["fp32", "bf16", "fp16"]), st.text(max_size=6)),
    data=st.one_of(st.sampled_from(["synthetic", "jpeg", "", "/nope", "s3://b/k"]), st.text(max_size=10)),
    object_store_limit_mb=st.one_of(st.none(), ints),
    calls_per_actor=st.one_of(st.none(), ints),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(configs)
def test_any_config_is_accepted_or_refused_in_one_line(config):
    try:
        config.validate()
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 300
        assert message.split()[0] in set(RunConfig.__dataclass_fields__)
    else:
        assert 1 <= config.batch_size <= 8192 and 1 <= config.concurrency <= 256
        assert config.pipeline in ("naive", "actor") and config.precision in ("fp32", "bf16", "fp16")
        assert 0 <= config.num_gpus <= 8
