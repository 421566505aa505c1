import hashlib

import pytest

from cascade.workers.backends.packaged import CATALOGUE, ModelFetchError, assemble, find_parts, lookup


def write_parts(folder, chunks):
    paths = []
    for i, chunk in enumerate(chunks, start=1):
        path = folder / "pkg" / "data" / f"part{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(chunk)
        paths.append(path)
    return paths


def test_parts_are_concatenated_in_order_and_verified(tmp_path):
    chunks = [b"GGUF" + bytes(100), bytes(range(256)), b"tail"]
    write_parts(tmp_path, chunks)
    parts = find_parts(tmp_path, ["**/part01.bin", "**/part02.bin", "**/part03.bin"])
    target = assemble(parts, tmp_path / "model.gguf", sha256=hashlib.sha256(b"".join(chunks)).hexdigest())
    assert target.read_bytes() == b"".join(chunks)


def test_a_corrupted_part_fails_the_hash_check_and_leaves_no_file(tmp_path):
    chunks = [b"GGUF" + bytes(100), bytes(range(256))]
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()
    parts = write_parts(tmp_path, [chunks[0], bytes(range(255)) + b"X"])  # one byte differs
    with pytest.raises(ModelFetchError, match="does not match the expected"):
        assemble(parts, tmp_path / "model.gguf", sha256=expected)
    assert not (tmp_path / "model.gguf").exists() and not (tmp_path / "model.gguf.partial").exists()


def test_missing_parts_and_unknown_models_are_named(tmp_path):
    with pytest.raises(ModelFetchError, match="no file matching"):
        find_parts(tmp_path, ["**/part01.bin"])
    with pytest.raises(ModelFetchError, match="unknown model 'gpt-5'"):
        lookup("gpt-5")
    assert {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m", "gemma-3-270m"} <= set(CATALOGUE)
    assert len(CATALOGUE["qwen2.5-coder-1.5b"].packages) == 22
