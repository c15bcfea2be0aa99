"""The command line: `handprop demo digits` trains on the digits, prints the test accuracy, writes
figures (the vessel demo, `handprop demo`, is tested in test_segmentation.py)."""

import subprocess
import sys

from handprop.cli import main, run_demo


def test_run_demo_writes_curves_and_reports_accuracy(tmp_path, capsys):
    result = run_demo(tmp_path / "out", epochs=3, verbose=0, gallery=False)
    printed = capsys.readouterr().out
    assert "test accuracy:" in printed
    assert 0.0 <= result["test_accuracy"] <= 1.0
    curves = tmp_path / "out" / "digits_training_curves.png"
    assert curves.exists() and curves.stat().st_size > 10_000
    assert str(curves.resolve().parent) in printed


def test_full_demo_reaches_95_percent(tmp_path, capsys):
    main(["demo", "digits", "--out", str(tmp_path), "--epochs", "30"])
    printed = capsys.readouterr().out
    line = next(s for s in printed.splitlines() if s.startswith("test accuracy:"))
    accuracy = float(line.split()[2].rstrip("%")) / 100
    assert accuracy >= 0.95, line
    pngs = sorted(p.name for p in tmp_path.rglob("*.png"))
    assert "digits_training_curves.png" in pngs and len(pngs) > 3  # curves + optimizer gallery


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "handprop.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout and "gallery" in out.stdout


def test_demo_on_a_bad_drive_folder_says_what_is_wrong_without_a_traceback(tmp_path, capsys):
    import pytest

    from handprop.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["demo", "--drive", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("handprop demo: load_drive: the DRIVE folder") and "Traceback" not in err
