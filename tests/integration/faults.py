"""Services a fault test can break on purpose (its own Redis, its own PostgreSQL cluster) and the
ledger every fault scenario checks from SQL afterwards."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s} s")


class OwnRedis:
    """A Redis server of the test's own, on a free port, that keeps nothing: a restart is empty."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class OwnPostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder, a free port) that the test
    may stop and start. Run as the `postgres` user when the tests run as root."""

    def __init__(self):
        (bin_dir,) = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:] or [""]
        self.bin = Path(bin_dir) if bin_dir else Path(shutil.which("pg_ctl") or "pg_ctl").parent
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="cascade-pg-"))
        self.as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def init(self) -> OwnPostgres:
        if self.as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        return self.start()

    def start(self) -> OwnPostgres:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l", str(self.folder / "log"), "-w", "start")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


def null_config(folder: Path, *, delay_ms: int = 0, max_batch: int = 16, tiers: int = 2) -> Path:
    """A null-backend cascade whose tier names are unique to this test (no stray message is ever theirs)."""
    tag = uuid.uuid4().hex[:6]
    sizes = ["1B", "8B", "70B"][-tiers:] if tiers < 3 else ["1B", "8B", "70B"]
    blocks = []
    for i, params in enumerate(sizes):
        last = i == len(sizes) - 1
        blocks.append(
            f'[[tiers]]\nname = "f{tag}-{i}"\nbackend = "null"\nmodel = "null-{params}"\nparams = "{params}"\n'
            + ("" if last else "tau_t = 0.5\n")
            + f"max_batch = {max_batch}\noptions = {{ delay_ms = {delay_ms} }}\n"
        )
    path = folder / f"faults-{tag}.toml"
    path.write_text("\n".join(blocks))
    return path


def write_rows(path: Path, n: int, prefix: str = "q") -> Path:
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"{prefix}{i}", "question": f"Fault question {prefix}{i}?", "choices": ["a", "b", "c", "d"],
                                 "answer": "ABCD"[i % 4]}) + "\n")
    return path


@dataclass
class Ledger:
    """What the database says after a fault: every figure but `submitted`, `done` and `failed` must be 0."""

    submitted: int
    done: int
    failed: int
    lost: int  # still queued: nothing will ever finish them
    duplicated: int  # (job, tier) attempts written twice
    double_counted: int  # jobs whose totals differ from the sum of their attempts
    changed: int  # done jobs whose answer is not their final tier's accepted answer

    def clean(self) -> bool:
        return self.lost == self.duplicated == self.double_counted == self.changed == 0


def ledger(database_url: str, batch_names: list[str]) -> Ledger:
    from sqlalchemy import text

    from cascade.storage.engine import session_scope

    jobs = "SELECT j.* FROM jobs j JOIN batches b ON b.id = j.batch_id WHERE b.name = ANY(:names)"
    with session_scope(database_url) as s:
        def one(sql: str) -> int:
            return int(s.execute(text(sql), {"names": batch_names}).scalar() or 0)

        return Ledger(
            submitted=one(f"SELECT count(*) FROM ({jobs}) j"),
            done=one(f"SELECT count(*) FROM ({jobs}) j WHERE status = 'done'"),
            failed=one(f"SELECT count(*) FROM ({jobs}) j WHERE status = 'failed'"),
            lost=one(f"SELECT count(*) FROM ({jobs}) j WHERE status = 'queued'"),
            duplicated=one(
                f"SELECT count(*) FROM (SELECT a.job_id FROM attempts a JOIN ({jobs}) j ON j.id = a.job_id "
                "GROUP BY a.job_id, a.tier HAVING count(*) > 1) d"
            ),
            double_counted=one(
                f"SELECT count(*) FROM ({jobs}) j JOIN (SELECT job_id, sum(tokens_in) t, sum(flops) f, sum(cost_usd) c "
                "FROM attempts WHERE NOT shadow GROUP BY job_id) a ON a.job_id = j.id "
                "WHERE j.status <> 'queued' AND (j.tokens_in <> a.t OR abs(j.flops - a.f) > 1e-6 * a.f OR abs(j.cost_usd - a.c) > 1e-12)"
            ),
            changed=one(
                f"SELECT count(*) FROM ({jobs}) j JOIN attempts a ON a.job_id = j.id AND a.tier = j.final_tier "
                "WHERE j.status = 'done' AND (a.decision <> 'accepted' OR a.answer IS DISTINCT FROM j.answer)"
            ),
        )


def wait_until_finished(database_url: str, batch_names: list[str], timeout_s: float, *, supervise=None) -> Ledger:
    """Poll until no job is queued; `supervise` (e.g. Cluster.restart_exited) runs on every poll."""
    deadline = time.monotonic() + timeout_s
    while True:
        if supervise is not None:
            supervise()
        current = ledger(database_url, batch_names)
        if current.lost == 0 and current.submitted:
            return current
        if time.monotonic() > deadline:
            return current
        time.sleep(0.5)


def wait_until_some_done(database_url: str, batch_names: list[str], at_least: int, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = ledger(database_url, batch_names).done
        if done >= at_least:
            return done
        time.sleep(0.1)
    raise RuntimeError(f"fewer than {at_least} jobs done after {timeout_s} s")
