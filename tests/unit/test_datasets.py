"""Dataset readers: each malformed row fails alone; JSONL, CSV and Parquet read the same rows."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cascade.workers.batch.datasets import DatasetError, estimate_rows, read_rows

GOOD = [
    {"id": "q1", "question": "Largest planet?", "choices": ["Mars", "Jupiter"], "answer": "B"},
    {"id": 2, "question": "2 + 2 = ?", "choices": ["3", "4", "5"], "answer": 1},
    {"id": "q3", "question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": "Paris"},
]


def test_malformed_jsonl_rows_fail_alone_with_their_reason(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps(GOOD[0]).encode(), b'{"id": "bad", "question": ', json.dumps({"id": "nq", "choices": ["a", "b"]}).encode(),
             json.dumps({"id": "wt", "question": 42, "choices": ["a", "b"]}).encode(), b'{"id": "enc", "question": "caf\xe9"}',
             json.dumps({"question": "no id", "choices": ["a", "b"]}).encode(), b"[1, 2]", json.dumps(GOOD[1]).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    rows = list(read_rows(path))
    assert [r.row_id for r in rows] == ["q1", "#2", "nq", "wt", "#5", "#6", "#7", "2"]  # "#N": line N
    assert [r.index for r in rows] == list(range(1, 9))
    errors = [r.error for r in rows]
    assert errors[0] is None and errors[-1] is None
    assert errors[1].startswith("bad JSON")
    assert errors[2] == "empty question: give the question text"
    assert errors[3] == "field 'question' must be text, got int"
    assert errors[4].startswith("not UTF-8")
    assert errors[5] == "missing id field 'id'"
    assert errors[6] == "expected a JSON object, got list"
    assert rows[-1].gold == "B" and rows[0].choices == ["Mars", "Jupiter"]
    assert estimate_rows(path) == 8


def write_all_formats(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in GOOD))
    csv_path = tmp_path / "d.csv"
    csv_path.write_text(
        "id,question,A,B,C,answer\n"
        'q1,Largest planet?,Mars,Jupiter,,B\n'
        '2,"2 + 2 = ?",3,4,5,B\n'
        'q3,"Capital of\nFrance?",Paris,Rome,,A\n'
    )
    parquet = tmp_path / "d.parquet"
    table = pa.table({
        "id": [str(r["id"]) for r in GOOD],
        "question": [r["question"] for r in GOOD],
        "choices": [r["choices"] for r in GOOD],
        "answer": ["B", "B", "A"],
    })
    pq.write_table(table, parquet)
    return jsonl, csv_path, parquet


def test_jsonl_csv_and_parquet_give_the_same_rows(tmp_path):
    jsonl, csv_path, parquet = write_all_formats(tmp_path)
    as_tuples = lambda path: [(r.row_id, r.question.replace("\n", " "), r.choices, r.gold, r.error) for r in read_rows(path)]
    assert as_tuples(jsonl) == as_tuples(csv_path) == as_tuples(parquet)
    assert estimate_rows(parquet) == 3


def test_csv_row_with_bad_bytes_or_extra_fields_fails_alone(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,question,A,B\nr1,fine?,a,b\nr2,caf\xe9?,a,b\nr3,too,many,fields,here\nr4,ok?,a,b\n")
    rows = list(read_rows(path))
    assert [r.error for r in rows] == [None, "not UTF-8", "more fields than the header's 4", None]


def test_unreadable_inputs_are_refused_as_a_whole(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        list(read_rows(tmp_path / "absent.jsonl"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="cannot tell the format"):
        list(read_rows(tmp_path / "x.txt"))


def test_rows_that_no_database_could_store_fail_alone(tmp_path):
    path = tmp_path / "hostile.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    lines = [
        json.dumps({"id": "nul", "question": "What\x00now?", "choices": ["a", "b"]}),
        '{"id": "surrogate", "question": "Lone \\ud800 half?", "choices": ["a", "b"]}',
        '{"id": "deep", "question": "Deep?", "choices": ' + deep + "}",
        '{"id": "deep-text", "question": "Deep?", "choices": "' + deep + '"}',
        json.dumps({"id": "id\x00nul", "question": "Fine?", "choices": ["a", "b"]}),
        json.dumps({"id": "huge", "question": "x" * 100_001, "choices": ["a", "b"]}),
        json.dumps(GOOD[0]),
    ]
    path.write_text("\n\n".join(lines) + "\n")  # blank lines between: positions stay file lines
    rows = list(read_rows(path))
    assert [r.index for r in rows] == [1, 3, 5, 7, 9, 11, 13]
    errors = [r.error for r in rows]
    assert errors[0] == "question contains a NUL character"
    assert errors[1] == "question is not valid Unicode (it holds a lone surrogate)"
    assert errors[2] == "bad JSON (nested too deeply)"
    assert errors[3] == "field 'choices' is text but not a JSON list"
    assert errors[4] == "id field 'id' contains a NUL character" and rows[4].row_id == "#9"
    assert errors[5] == "question is longer than 100,000 characters"
    assert errors[6] is None


def test_a_csv_without_the_id_or_question_column_is_refused_whole(tmp_path):
    from cascade.workers.batch.datasets import Fields, check_columns

    path = tmp_path / "q.csv"
    path.write_text("qid,question,A,B\nq1,Why?,yes,no\n")
    with pytest.raises(DatasetError, match=r"has no id column 'id' \(its columns: 'qid', 'question', 'A', 'B'\): name it with --id-field"):
        check_columns(path, Fields())
    check_columns(path, Fields(id="qid"))
    assert [(r.index, r.row_id) for r in read_rows(path, fields=Fields(id="qid"))] == [(2, "q1")]  # line 2: after the header


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary(max_size=80), max_size=20))
def test_any_bytes_give_one_row_per_nonblank_line_each_a_question_or_an_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / "any.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b"").replace(b"\r", b"") for line in lines) + b"\n")
    rows = list(read_rows(path))
    assert len(rows) == sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
    assert all((r.error is None) == bool(r.question) for r in rows)


def test_rows_without_choices_are_free_form_prompts_with_their_gold(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text('id,prompt,gold,grader,max_tokens\n'
                    'a,Who wrote Middlemarch?,"[""George Eliot"", ""Mary Ann Evans""]",,12\n'
                    'b,What is 6 x 7?,42,number,\n'
                    'c,Broken gold,"[""unclosed",,\n'
                    'd,Too long,x,,0\n', encoding="utf-8")
    rows = list(read_rows(path))
    a, b, c, d = rows
    assert (a.kind, a.question, a.gold_aliases, a.grader, a.max_tokens) == ("open", "Who wrote Middlemarch?", ["George Eliot", "Mary Ann Evans"], "contains", 12)
    assert (b.kind, b.gold_aliases, b.grader, b.max_tokens) == ("open", ["42"], "number", None)
    assert c.error == "field 'gold' starts like a JSON list but is not one"
    assert d.error.startswith("max_tokens must be a whole number of tokens > 0")
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text('{"id": 1, "prompt": "Hi?", "stop": ["\\n"]}\n{"id": 2, "question": "2+2?", "choices": ["3", "4"], "answer": "B"}\n')
    free, choice = read_rows(jsonl)
    assert (free.kind, free.stop, free.gold_aliases) == ("open", ["\n"], None)
    assert (choice.kind, choice.gold) == ("choice", "B")
