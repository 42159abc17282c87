"""retrain_model.py as a process: progress output, exit codes, the lock, and a run killed
half-way (the old model keeps serving, no upload is lost or archived, the next run retries)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from learning_helpers import REPO_ROOT, SMALL_K_TEXT, kdd_bytes, register

from tests.conftest import poll
from utils.model_store import MODEL_FILE
from utils.registry import RetrainLock

WAIT = 60.0  # seconds: bound of every poll below


def cli(setup, *args: str, train=None) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "retrain_model.py"), "--data-dir",
            str(setup.data_dir), "--model-dir", str(setup.model_dir), "--train",
            str(train or setup.base), "--k", SMALL_K_TEXT, *args]


def run_cli(setup, *args: str, train=None) -> subprocess.CompletedProcess:
    return subprocess.run(cli(setup, *args, train=train), capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300)


def register_batches(setup, lines, n: int) -> None:
    for i in range(n):
        register(setup.registry, kdd_bytes(lines[i * 100:(i + 1) * 100]), f"u{i}.txt")


def test_force_retrains_and_reports_progress(setup, fresh_lines):
    register_batches(setup, fresh_lines, 3)
    done = run_cli(setup, "--force", "--tolerance", "1", "--category-tolerance", "1")
    assert done.returncode == 0, done.stderr
    assert "reading the training data base.txt" in done.stderr
    assert "fitting 5 K-means models" in done.stderr
    assert "promoted" in done.stdout
    assert setup.registry.counts()["archived"] == 3


def test_without_a_queued_request_nothing_happens(setup, fresh_lines):
    register_batches(setup, fresh_lines, 3)
    done = run_cli(setup)
    assert done.returncode == 0
    assert "nothing queued: 3 pending upload(s)" in done.stdout
    assert setup.registry.runs() == []


def test_a_rejected_candidate_exits_3(setup, fresh_lines):
    attacks = [line for line in fresh_lines if line.split(",")[41] != "normal"]
    for i in range(10):
        register(setup.registry, kdd_bytes(attacks[i * 100:(i + 1) * 100], relabel="normal"))
    done = run_cli(setup)
    assert done.returncode == 3, done.stderr
    assert "rejected" in done.stdout


def test_a_second_process_leaves_the_work_to_the_lock_holder(setup, fresh_lines):
    register_batches(setup, fresh_lines, 10)
    holder = RetrainLock(setup.data_dir)
    assert holder.acquire()
    try:
        done = run_cli(setup, "--lock-wait", "0.2")
    finally:
        holder.release()
    assert done.returncode == 4
    assert "another retrain holds the lock" in done.stderr
    assert setup.registry.state()["requests"] == 1


def test_bad_k_values_are_a_usage_error(setup):
    done = run_cli(setup, "--force", "--k", "4,x")
    assert done.returncode == 2
    assert "k values" in done.stderr


def test_a_killed_run_loses_nothing_and_the_next_run_retries(setup, fresh_lines, tmp_path):
    register_batches(setup, fresh_lines, 10)
    model_before = (setup.model_dir / MODEL_FILE).read_bytes()
    stored = {u.sha256: setup.registry.path_of(u) for u in setup.registry.uploads()}
    fifo = tmp_path / "train.txt"
    os.mkfifo(fifo)  # reading it blocks: the run is caught half-way, deterministically
    process = subprocess.Popen(cli(setup, train=fifo), cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run = poll(lambda: setup.registry.running_run(), "the run to start", WAIT)
        poll(lambda: all(u.run_id == run["id"] for u in setup.registry.uploads()),
             "the run to claim the uploads", WAIT)
        process.send_signal(signal.SIGKILL)
        process.wait(WAIT)
    finally:
        process.kill()
        process.wait(WAIT)

    assert (setup.model_dir / MODEL_FILE).read_bytes() == model_before
    assert setup.registry.counts() == {"pending": 10, "used": 0, "archived": 0, "quarantined": 0}
    assert all(path.is_file() for path in stored.values())
    assert not (setup.data_dir / "uploaded_logs" / "archived").exists()
    assert setup.registry.running_run() is None
    lock = RetrainLock(setup.data_dir)
    assert lock.acquire()  # the kernel released the dead run's lock
    lock.release()

    fifo.unlink()
    fifo.write_bytes(setup.base.read_bytes())
    done = run_cli(setup, "--force", "--tolerance", "1", "--category-tolerance", "1", train=fifo)
    assert done.returncode == 0, done.stderr
    runs = {r["id"]: r for r in setup.registry.runs()}
    assert runs[run["id"]]["outcome"] == "failed"
    assert "interrupted" in runs[run["id"]]["reason"]
    assert setup.registry.counts()["archived"] == 10


def test_help_describes_the_exit_codes():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "retrain_model.py"), "--help"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 0
    assert "4 another retrain holds the lock" in done.stdout


def test_quarantined_uploads_are_listed_and_released_from_the_command_line(setup, fresh_lines):
    register_batches(setup, fresh_lines, 3)
    shas = sorted(u.sha256 for u in setup.registry.uploads())
    assert setup.registry.quarantine(shas) == shas
    listed = run_cli(setup, "--list-quarantined")
    assert listed.returncode == 0
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == shas
    assert "anonymous from 127.0.0.1" in listed.stdout

    one = run_cli(setup, "--release", shas[0])
    assert one.returncode == 0, one.stderr
    assert setup.registry.find(shas[0]).status == "pending"
    again = run_cli(setup, "--release", shas[0])  # not quarantined any more
    assert again.returncode == 2 and "not quarantined" in again.stderr
    assert run_cli(setup, "--release", "all").returncode == 0
    assert setup.registry.counts()["quarantined"] == 0
