"""The command line: bad input gives exit code 2 and one clear line; nothing written is lost."""

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version

import pytest

from spikefa.cli import main, resending_lost_interrupts

SHORT = ["--set", "train.examples=300", "--set", 'algorithms=["fa"]']


def spikefa(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "spikefa", *args], capture_output=True, text=True, **kw
    )


def assert_one_clear_line(result, code, *words):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(w in lines[0] for w in words), lines[0]


def test_info_lists_versions_and_devices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert (
        f"brian2     {version('brian2')}" in out
        and "cpp_standalone" in out
        and "fig2_linear" in out
    )


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert (
        exit_.value.code == 0 and capsys.readouterr().out.strip() == f"spikefa {version('spikefa')}"
    )


def test_help_says_where_configs_and_networks_are_found(capsys):
    from spikefa.cli import build_parser

    texts = []
    for command in ("run", "sweep", "evaluate", "traces", "diagnose", "export"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        texts.append(" ".join(capsys.readouterr().out.split()))
    assert "shipped config" in texts[0] and "shipped config" in texts[1]
    assert all("config in models/" not in t for t in texts)
    assert all("shipped network" in t for t in texts[2:])


def test_a_text_file_as_checkpoint_is_one_line_saying_so(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights\n")
    r = spikefa("evaluate", str(notes))
    assert_one_clear_line(r, 2, str(notes), "not a spikefa checkpoint")
    assert "pickle" not in r.stderr


def test_unknown_key_exits_2_naming_it(tmp_path):
    r = spikefa("run", "fig2_linear", "--set", "bogus_key=1", "--out", str(tmp_path / "r"))
    assert_one_clear_line(r, 2, "bogus_key")
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "argv, words",
    [
        (["run", "fig2_linear", "--set", "seed=abc"], ["seed", "integer"]),
        (["run", "fig2_linear", "--set", 'algorithms=["fa","sgd"]'], ["algorithms"]),
        (["run", "fig2_linear", "--set", "train.examples=0"], ["train.examples", "positive"]),
        (["run", "missing_config"], ["missing_config"]),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, words, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words)


def test_unwritable_output_folder_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", "fig2_linear", *SHORT, "--out", str(blocker / "r")]) == 2
    assert "cannot write results" in capsys.readouterr().err


def test_finished_results_folder_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "fig2_linear", *SHORT, "--out", str(out)]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["run", "fig2_linear", *SHORT, "--out", str(out)]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_divergence_exits_3(tmp_path, capsys):
    assert (
        main(["run", "fig2_linear", *SHORT, "--set", "lr.fa=5.0", "--out", str(tmp_path / "r")])
        == 3
    )
    err = capsys.readouterr().err
    assert "fa diverged" in err and "examples" in err
    assert not (tmp_path / "r" / "summary.json").exists()


def test_data_check(data_folder, tmp_path):
    assert spikefa("data", "check", "--data", str(data_folder)).returncode == 0
    (tmp_path / "mnist").mkdir()
    for f in (data_folder / "mnist").glob("*.gz"):
        b = bytearray(f.read_bytes())
        if f.name.startswith("t10k-labels"):
            b[len(b) // 2] ^= 0xFF
        (tmp_path / "mnist" / f.name).write_bytes(bytes(b))
    r = spikefa("data", "check", "--data", str(tmp_path))
    assert (
        r.returncode == 1
        and "t10k-labels-idx1-ubyte: corrupted" in r.stdout
        and "Traceback" not in r.stderr
    )
    empty = spikefa("data", "check", "--data", str(tmp_path / "empty"))
    assert empty.returncode == 1 and "no data set found" in empty.stderr


def test_interrupt_lost_in_a_callback_of_compiled_code_is_sent_again(monkeypatch):
    # as numba's hooks into LLVM are called while it compiles: a KeyboardInterrupt raised in a ctypes
    # callback never reaches the caller
    def interrupted():
        raise KeyboardInterrupt

    callback = ctypes.CFUNCTYPE(None)(interrupted)
    monkeypatch.setattr(sys, "unraisablehook", lambda u: None)  # lost, without the noise
    callback()  # returns as if nothing happened
    previous = signal.signal(
        signal.SIGINT, signal.default_int_handler
    )  # Python's own, as in a terminal
    try:
        with pytest.raises(KeyboardInterrupt), resending_lost_interrupts():
            callback()
            for _ in range(1000):  # the re-sent signal is handled between two bytecodes
                time.sleep(0.001)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_leaves_earlier_results_untouched(tmp_path):
    earlier = tmp_path / "earlier"
    assert spikefa("run", "fig2_linear", *SHORT, "--out", str(earlier)).returncode == 0
    before = {p: p.read_bytes() for p in earlier.rglob("*") if p.is_file()}
    out = tmp_path / "interrupted"
    # one evaluation per example makes this run take minutes: it is interrupted long before the end
    # SIGINT's default action, as in a terminal: a test runner started in the background passes on an
    # ignored SIGINT, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spikefa",
            "run",
            "fig2_linear",
            "--set",
            "train.examples=500000",
            "--set",
            "train.eval_every=1",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    while not (out / "config.toml").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the run did not stop on Ctrl-C within 120 s") from None
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not (out / "summary.json").exists()
    assert not [p for p in out.rglob("*.tmp")]
    assert before == {p: p.read_bytes() for p in earlier.rglob("*") if p.is_file()}
    assert json.loads((earlier / "summary.json").read_text())["experiment"] == "fig2_linear"
    assert os.listdir(tmp_path) and sorted(os.listdir(tmp_path)) == ["earlier", "interrupted"]
