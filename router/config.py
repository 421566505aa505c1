"""The cascade configuration: an ordered list of tiers, declared once in a TOML file.

Everything else (queue names, the next tier, the cost table) is derived from it by the helpers here.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade.router.errors import ConfigError, InvalidQuestion
from cascade.router.prompts import JobKind, stop_sequences
from cascade.router.signals import AGGREGATES, DEFAULT_AGGREGATE, is_aggregate

QUEUE_PREFIX = "tier."
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DEVICES = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
_DTYPES = ("auto", "float32", "bfloat16", "float16")
_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}

_TIER_KEYS = {
    "name",
    "backend",
    "model",
    "params",
    "tau_t",
    "tau_ik",
    "probe",
    "probe_layer",
    "device",
    "dtype",
    "max_batch",
    "max_wait_ms",
    "chat_template",
    "compile",
    "price_in_usd_per_1m",
    "price_out_usd_per_1m",
    "base_url",
    "api_key_env",
    "concurrency",
    "timeout_s",
    "max_retries",
    "shadow_rate",
    "options",
    "max_tokens",
    "max_tokens_limit",
    "stop",
    "p_t_aggregate",
    "open_tau_t",
    "open_tau_ik",
    "open_probe",
    "abstain_below",
}


@dataclass(frozen=True)
class Tier:
    """One model size in the cascade and the thresholds its answers must meet to be kept."""

    name: str
    backend: str
    model: str
    index: int = 0
    params: float | None = None  # parameter count; None: read from the loaded model
    tau_t: float = 0.9
    tau_ik: float = 0.5
    probe: str | None = None  # path to a trained P(IK) probe; None: route on P(T) alone
    probe_layer: int | None = None  # None: the probe's own layer, else ~3/4 of the depth
    device: str = "auto"
    dtype: str = "auto"
    max_batch: int = 16
    max_wait_ms: int = 20  # how long a worker waits to fill a batch
    chat_template: bool | None = None  # None: use the model's template when it has one
    compile: bool = False  # torch.compile the forward pass (fixed bucket shapes)
    price_in_usd_per_1m: float = 0.0
    price_out_usd_per_1m: float = 0.0
    base_url: str | None = None  # an OpenAI-compatible endpoint (openai backend)
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key; the key itself is never in config
    concurrency: int = 8  # requests in flight per worker (openai backend)
    timeout_s: float = 60.0  # per request
    max_retries: int = 4  # on 429, 5xx, timeouts and connection errors, with backoff and jitter
    options: Mapping[str, Any] = field(default_factory=dict)
    shadow_rate: float = 0.0  # share of the answers this tier keeps also sent to the last tier (live audit)
    # Free-form jobs: how much to generate, and how their token probabilities become one P(T).
    max_tokens: int = 32  # new tokens for a free-form job that does not say
    max_tokens_limit: int = 512  # the most new tokens a job may ask of this tier
    stop: tuple[str, ...] = ()  # stop sequences for jobs that give none
    p_t_aggregate: str = DEFAULT_AGGREGATE  # see router.signals.AGGREGATES
    open_tau_t: float | None = None  # tau_t for free-form jobs; None: tau_t
    open_tau_ik: float | None = None  # tau_ik for free-form jobs; None: tau_ik
    open_probe: str | None = None  # a P(IK) probe trained on free-form prompts; None: P(T) alone for them
    abstain_below: float | None = None  # last tier only: answer nothing when its P(T) is below this

    @property
    def queue(self) -> str:
        return queue_name(self.name)

    @property
    def uses_probe(self) -> bool:
        return self.probe is not None

    def probe_for(self, kind: str) -> str | None:
        """The probe that scores a job of this kind (multiple-choice and free-form probes differ)."""
        return self.open_probe if kind == JobKind.OPEN.value else self.probe

    def tau_t_for(self, kind: str) -> float:
        return self.open_tau_t if kind == JobKind.OPEN.value and self.open_tau_t is not None else self.tau_t

    def tau_ik_for(self, kind: str) -> float:
        return self.open_tau_ik if kind == JobKind.OPEN.value and self.open_tau_ik is not None else self.tau_ik


@dataclass(frozen=True)
class CascadeConfig:
    """The ordered tiers, smallest first. The last tier always answers."""

    tiers: tuple[Tier, ...]
    source: Path | None = None

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        known = ", ".join(t.name for t in self.tiers)
        raise ConfigError(f"unknown tier {name!r}: configured tiers are {known}")

    @property
    def first(self) -> Tier:
        return self.tiers[0]

    @property
    def last(self) -> Tier:
        return self.tiers[-1]

    def is_last(self, tier: Tier | str) -> bool:
        name = tier if isinstance(tier, str) else tier.name
        return name == self.last.name

    def next_tier(self, tier: Tier | str) -> Tier | None:
        current = self.tier(tier if isinstance(tier, str) else tier.name)
        if current.index + 1 < len(self.tiers):
            return self.tiers[current.index + 1]
        return None

    @property
    def queues(self) -> list[str]:
        return [t.queue for t in self.tiers]

    @property
    def max_tokens_limit(self) -> int:
        """The most new tokens a free-form job may ask for: every tier it may reach must allow them."""
        return min(t.max_tokens_limit for t in self.tiers)


def queue_name(tier_name: str) -> str:
    """The Celery queue that carries work for one tier."""
    return f"{QUEUE_PREFIX}{tier_name}"


def parse_count(value: Any, *, field_name: str) -> float:
    """Parse a parameter count: a number, or a string like "8.03B" or "630M"."""
    if isinstance(value, bool):
        raise ConfigError(f"{field_name}: expected a number such as 8.03e9 or \"8.03B\", got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower().replace("_", "")
        scale = _SUFFIXES.get(text[-1], 1.0)
        if text[-1] in _SUFFIXES:
            text = text[:-1]
        try:
            number = float(text) * scale
        except ValueError:
            raise ConfigError(
                f"{field_name}: cannot read {value!r} as a parameter count; write 8.03e9 or \"8.03B\""
            ) from None
    else:
        raise ConfigError(f"{field_name}: expected a number such as 8.03e9 or \"8.03B\", got {value!r}")
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{field_name}: a parameter count must be a positive finite number, got {value!r}")
    return number


def load_config(path: str | Path) -> CascadeConfig:
    """Read and validate a TOML cascade configuration."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found: pass --config or set CASCADE_CONFIG") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder: pass the config file itself (e.g. {path}/cascade.toml)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); a config is a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: not readable (permission denied)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(raw, base_dir=path.parent, source=path)


def parse_config(raw: Mapping[str, Any], *, base_dir: Path | None = None, source: Path | None = None) -> CascadeConfig:
    """Validate a configuration already read into a mapping."""
    unknown_top = set(raw) - {"tiers"}
    if unknown_top:
        raise ConfigError(f"unknown top-level key(s) {sorted(unknown_top)}: a config holds only [[tiers]]")
    entries = raw.get("tiers")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("no tiers configured: add at least one [[tiers]] table with name, backend and model")
    tiers = tuple(_parse_tier(entry, index, base_dir) for index, entry in enumerate(entries))
    if tiers[-1].shadow_rate:
        raise ConfigError(
            f"tiers[{tiers[-1].index}] ({tiers[-1].name}).shadow_rate: the last tier is what shadows are compared "
            "with; set shadow_rate on the tiers before it"
        )
    for tier in tiers[:-1]:
        if tier.abstain_below is not None:
            raise ConfigError(
                f"tiers[{tier.index}] ({tier.name}).abstain_below: only the last tier abstains (the others escalate); "
                "move abstain_below to the last tier"
            )
    seen: set[str] = set()
    for tier in tiers:
        if tier.name in seen:
            raise ConfigError(f"tiers[{tier.index}].name: {tier.name!r} is used twice; tier names must be unique")
        seen.add(tier.name)
    return CascadeConfig(tiers=tiers, source=source)


def _parse_tier(entry: Any, index: int, base_dir: Path | None) -> Tier:
    where = f"tiers[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a table ([[tiers]]), got {type(entry).__name__}")
    unknown = set(entry) - _TIER_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known keys are {sorted(_TIER_KEYS)}")
    for required in ("name", "backend", "model"):
        if not isinstance(entry.get(required), str) or not entry[required].strip():
            raise ConfigError(f"{where}.{required}: required, a non-empty string")
    name = entry["name"]
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"{where}.name: {name!r} is not usable as a queue name; use lowercase letters, digits, '-' or '_'"
        )
    where = f"tiers[{index}] ({name})"
    kwargs: dict[str, Any] = {
        "name": name,
        "backend": entry["backend"].strip(),
        "model": _resolve_model(entry["model"].strip(), base_dir),
        "index": index,
    }
    if "params" in entry:
        kwargs["params"] = parse_count(entry["params"], field_name=f"{where}.params")
    for key in ("tau_t", "tau_ik", "open_tau_t", "open_tau_ik", "abstain_below"):
        if key in entry:
            kwargs[key] = _probability(entry[key], f"{where}.{key}")
    if "shadow_rate" in entry:
        kwargs["shadow_rate"] = _probability(entry["shadow_rate"], f"{where}.shadow_rate", "a share")
    for key in ("probe", "open_probe"):
        if key in entry:
            if not isinstance(entry[key], str) or not entry[key]:
                raise ConfigError(f"{where}.{key}: expected the path of a probe file")
            kwargs[key] = str(_relative_to(Path(entry[key]), base_dir))
    if "p_t_aggregate" in entry:
        if not isinstance(entry["p_t_aggregate"], str) or not is_aggregate(entry["p_t_aggregate"]):
            raise ConfigError(
                f"{where}.p_t_aggregate: expected one of {', '.join(AGGREGATES)} (or qNN, a percentile 1-50), "
                f"got {entry['p_t_aggregate']!r}"
            )
        kwargs["p_t_aggregate"] = entry["p_t_aggregate"]
    if "stop" in entry:
        try:
            kwargs["stop"] = stop_sequences(entry["stop"])
        except InvalidQuestion as exc:
            raise ConfigError(f"{where}.stop: {exc}") from None
    for key in ("base_url", "api_key_env"):
        if key in entry:
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise ConfigError(f"{where}.{key}: expected a non-empty string")
            kwargs[key] = entry[key].strip()
    if "timeout_s" in entry:
        value = entry["timeout_s"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{where}.timeout_s: expected a finite number of seconds > 0, got {value!r}")
        kwargs["timeout_s"] = float(value)
    for key, minimum in (("probe_layer", 0), ("max_batch", 1), ("max_wait_ms", 0), ("concurrency", 1), ("max_retries", 0),
                         ("max_tokens", 1), ("max_tokens_limit", 1)):
        if key in entry:
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{where}.{key}: expected an integer >= {minimum}, got {value!r}")
            kwargs[key] = value
    if "device" in entry:
        if not isinstance(entry["device"], str) or not _DEVICES.match(entry["device"]):
            raise ConfigError(f"{where}.device: expected auto, cpu, cuda, cuda:N or mps, got {entry['device']!r}")
        kwargs["device"] = entry["device"]
    if "dtype" in entry:
        if entry["dtype"] not in _DTYPES:
            raise ConfigError(f"{where}.dtype: expected one of {', '.join(_DTYPES)}, got {entry['dtype']!r}")
        kwargs["dtype"] = entry["dtype"]
    if "chat_template" in entry:
        value = entry["chat_template"]
        if value == "auto":
            value = None
        elif not isinstance(value, bool):
            raise ConfigError(f"{where}.chat_template: expected true, false or \"auto\", got {value!r}")
        kwargs["chat_template"] = value
    if "compile" in entry:
        if not isinstance(entry["compile"], bool):
            raise ConfigError(f"{where}.compile: expected true or false, got {entry['compile']!r}")
        kwargs["compile"] = entry["compile"]
    for key in ("price_in_usd_per_1m", "price_out_usd_per_1m"):
        if key in entry:
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{where}.{key}: expected a finite price >= 0 in USD per million tokens, got {value!r}")
            kwargs[key] = float(value)
    if "options" in entry:
        if not isinstance(entry["options"], Mapping):
            raise ConfigError(f"{where}.options: expected a table of backend options")
        kwargs["options"] = dict(entry["options"])
    tier = Tier(**kwargs)
    if tier.max_tokens > tier.max_tokens_limit:
        raise ConfigError(
            f"{where}.max_tokens: {tier.max_tokens} is above max_tokens_limit {tier.max_tokens_limit}; lower it or raise the limit"
        )
    return tier


def _probability(value: Any, where: str, what: str = "a threshold") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: expected {what} between 0 and 1, got {value!r}")
    return float(value)


def _relative_to(path: Path, base_dir: Path | None) -> Path:
    path = path.expanduser()
    if path.is_absolute() or base_dir is None:
        return path
    return (base_dir / path).resolve()


def _resolve_model(model: str, base_dir: Path | None) -> str:
    """A relative local path is read against the config file's folder; ids pass unchanged."""
    if ":" in model.split("/")[0] and not Path(model).exists():
        return model  # a scheme such as tiny:llama-small
    candidate = _relative_to(Path(model), base_dir)
    if candidate.exists() or model.startswith((".", "~")) or model.endswith(".gguf"):
        return str(candidate)
    return model
