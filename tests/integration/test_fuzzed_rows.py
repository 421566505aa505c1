"""Fuzzed batch rows through real PostgreSQL and workers: random bytes, invalid UTF-8, NUL, lone
surrogates, huge fields, wrong types, 1 or 30 choices, repeated ids. Every row ends as a job or as
its own error, and the batch completes."""

from __future__ import annotations

import json
import time
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade.workers.batch import runs as batch_runs

HUGE = "x" * 150_000
texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0xDFFF), max_size=20),  # NUL, surrogates
    st.sampled_from(["", " ", "\x00", "What\x00?", "\ud800", HUGE, "Which option?"]),
)
values = st.one_of(texts, st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(), st.lists(st.integers(), max_size=3),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
choice_lists = st.one_of(st.lists(texts, min_size=0, max_size=30), values)
objects = st.fixed_dictionaries(
    {},
    optional={"id": st.one_of(st.sampled_from(["a", "b", "c", "d", "e"]), values), "question": st.one_of(texts, values),
              "choices": choice_lists, "answer": values},
)
lines = st.one_of(
    objects.map(lambda o: json.dumps(o).encode()),  # json.dumps escapes surrogates: valid JSON, invalid text
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),
    st.just(b"[" * 5000 + b"]" * 5000),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(lines, min_size=1, max_size=30))
def test_every_fuzzed_row_ends_as_a_job_or_its_own_error(null_cluster, tmp_path, rows):
    path = tmp_path / f"fuzz-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    name = path.stem
    summary = batch_runs.submit_file(null_cluster.client, path, name=name)
    nonblank = sum(1 for r in rows if r.strip())
    counts = summary["counts"]
    assert summary["rows_read"] == nonblank
    assert counts["total"] + counts["rejected"] == nonblank
    deadline = time.monotonic() + 60
    while (status := batch_runs.status(null_cluster.client, name))["status"] != "completed":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["counts"]["queued"] == 0
