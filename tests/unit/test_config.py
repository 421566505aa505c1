from pathlib import Path

import pytest

from cascade.router.config import load_config, parse_config, parse_count, queue_name
from cascade.router.errors import ConfigError


def tiers(*entries):
    return {"tiers": list(entries)}


SMALL = {"name": "small", "backend": "transformers", "model": "tiny:small", "tau_t": 0.8}
LARGE = {"name": "large", "backend": "transformers", "model": "tiny:medium"}


def test_tiers_keep_their_order_and_derive_queues_and_next_tier():
    config = parse_config(tiers(SMALL, LARGE))
    assert [t.name for t in config.tiers] == ["small", "large"]
    assert config.first.queue == "tier.small" == queue_name("small")
    assert config.next_tier("small").name == "large"
    assert config.next_tier("large") is None
    assert config.is_last("large") and not config.is_last("small")
    assert config.tier("small").tau_t == 0.8


def test_unknown_tier_names_the_configured_ones():
    config = parse_config(tiers(SMALL, LARGE))
    with pytest.raises(ConfigError, match="unknown tier 'huge': configured tiers are small, large"):
        config.tier("huge")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({**SMALL, "tau_t": 1.5}, r"tiers\[0\] \(small\)\.tau_t: expected a threshold between 0 and 1"),
        ({**SMALL, "max_batch": 0}, r"max_batch: expected an integer >= 1"),
        ({**SMALL, "modle": "x"}, r"unknown key\(s\) \['modle'\]"),
        ({"name": "small", "backend": "transformers"}, r"tiers\[0\]\.model: required"),
        ({**SMALL, "name": "Small Tier"}, r"not usable as a queue name"),
        ({**SMALL, "device": "gpu"}, r"device: expected auto, cpu, cuda"),
        ({**SMALL, "dtype": "int3"}, r"dtype: expected one of"),
        ({**SMALL, "params": "lots"}, r"cannot read 'lots' as a parameter count"),
        ({**SMALL, "price_in_usd_per_1m": -1}, r"price_in_usd_per_1m: expected a finite price >= 0"),
        ({**SMALL, "price_in_usd_per_1m": float("nan")}, r"price_in_usd_per_1m: expected a finite price >= 0"),
        ({**SMALL, "params": float("inf")}, r"params: a parameter count must be a positive finite number"),
        ({**SMALL, "timeout_s": float("nan")}, r"timeout_s: expected a finite number of seconds > 0"),
    ],
)
def test_invalid_tier_fields_are_named_with_the_fix(entry, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(tiers(entry, LARGE))


def test_empty_and_duplicate_tiers_are_refused():
    with pytest.raises(ConfigError, match="no tiers configured"):
        parse_config({"tiers": []})
    with pytest.raises(ConfigError, match="'small' is used twice"):
        parse_config(tiers(SMALL, SMALL))


@pytest.mark.parametrize(("raw", "expected"), [("8.03B", 8.03e9), ("630M", 630e6), (70e9, 70e9), ("1_000", 1000.0)])
def test_parameter_counts_accept_suffixes(raw, expected):
    assert parse_count(raw, field_name="params") == pytest.approx(expected)


def test_probe_and_local_model_paths_are_read_against_the_config_folder(tmp_path: Path):
    (tmp_path / "models" / "m").mkdir(parents=True)
    path = tmp_path / "cascade.toml"
    path.write_text(
        '[[tiers]]\nname = "a"\nbackend = "transformers"\nmodel = "models/m"\nprobe = "probes/a.npz"\n'
        '[[tiers]]\nname = "b"\nbackend = "transformers"\nmodel = "org/some-model"\n'
    )
    config = load_config(path)
    assert config.tier("a").model == str(tmp_path / "models" / "m")
    assert config.tier("a").probe == str(tmp_path / "probes" / "a.npz")
    assert config.tier("b").model == "org/some-model"  # a hub id passes unchanged


def test_missing_and_malformed_files_say_what_to_do(tmp_path: Path):
    with pytest.raises(ConfigError, match="pass --config or set CASCADE_CONFIG"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[tiers]\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_compile_is_an_opt_in_boolean():
    assert parse_config(tiers({**SMALL, "compile": True}, LARGE)).first.compile is True
    assert parse_config(tiers(SMALL, LARGE)).first.compile is False
    with pytest.raises(ConfigError, match="compile: expected true or false"):
        parse_config(tiers({**SMALL, "compile": "yes"}, LARGE))


def test_a_config_that_is_a_folder_or_not_utf8_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="is a folder: pass the config file itself"):
        load_config(tmp_path)
    binary = tmp_path / "cascade.toml"
    binary.write_bytes(b'[[tiers]]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(binary)


def test_bad_timing_settings_in_the_environment_are_refused(monkeypatch):
    from cascade.workers.runtime.settings import resolve

    for variable, value in (("CASCADE_VISIBILITY_TIMEOUT_S", "-5"), ("CASCADE_VISIBILITY_TIMEOUT_S", "soon"),
                            ("CASCADE_SWEEP_INTERVAL_S", "nan"), ("CASCADE_REDRIVE_AFTER_S", "-1")):
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError, match=variable):
            resolve("tiny")
        monkeypatch.delenv(variable)
    settings = resolve("tiny")
    assert settings.visibility_timeout_s == 300 and settings.redrive_after_s == 300


def test_a_shadow_rate_is_a_share_and_never_on_the_last_tier():
    assert parse_config(tiers({**SMALL, "shadow_rate": 0.02}, LARGE)).first.shadow_rate == 0.02
    with pytest.raises(ConfigError, match=r"shadow_rate: expected a share between 0 and 1, got 1.5"):
        parse_config(tiers({**SMALL, "shadow_rate": 1.5}, LARGE))
    with pytest.raises(ConfigError, match=r"tiers\[1\] \(large\)\.shadow_rate: the last tier is what shadows are compared with"):
        parse_config(tiers(SMALL, {**LARGE, "shadow_rate": 0.1}))
