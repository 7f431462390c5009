"""The `ibsolver` command line, end to end on small files."""
import json

import numpy as np
import pytest
from conftest import dsbs

from ibsolver.cli import main


def test_curve_from_csv_counts(tmp_path, capsys):
    counts = np.round(dsbs(0.1) * 1000).astype(int)
    np.savetxt(tmp_path / "counts.csv", counts, delimiter=",", fmt="%d")
    assert main(["curve", str(tmp_path / "counts.csv"), "--out", str(tmp_path / "o"), "-q"]) == 0
    with np.load(tmp_path / "o" / "curve.npz") as data:
        assert data["beta"].size > 10 and np.all(np.isfinite(data["i_ty"]))
    tr = json.loads((tmp_path / "o" / "transitions.json").read_text())
    assert tr["transitions"][0]["kind"] == "split"
    np.testing.assert_allclose(tr["transitions"][0]["beta"], 1.5625, rtol=1e-5)
    assert (tmp_path / "o" / "curve.png").stat().st_size > 10_000
    assert "split" in capsys.readouterr().out


def test_transitions_json_from_npy(tmp_path, capsys):
    np.save(tmp_path / "p.npy", dsbs(0.2))
    assert main(["transitions", str(tmp_path / "p.npy"), "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(out["first_instability"], 1 / 0.6**2, rtol=1e-12)


def test_solve_and_demo(tmp_path, capsys):
    np.savez(tmp_path / "p.npz", p_xy=dsbs(0.1))
    assert main(["solve", str(tmp_path / "p.npz"), "--beta", "3", "--out", str(tmp_path / "r.npz")]) == 0
    assert "I(X;T)" in capsys.readouterr().out
    assert main(["demo", "--problem", "dsbs", "--out", str(tmp_path / "demo"), "-q"]) == 0
    assert (tmp_path / "demo" / "curve.png").exists()


def test_bad_input_gives_a_clear_message(tmp_path, capsys):
    np.savetxt(tmp_path / "bad.csv", [[0.5, -0.5], [0.5, 0.5]], delimiter=",")
    assert main(["curve", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "non-negative" in capsys.readouterr().err
    assert main(["curve", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_version_and_help(capsys):
    assert main(["--version", "--verbose"]) == 0
    assert "backends" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out
