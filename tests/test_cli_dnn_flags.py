"""The run flags of every dnn subcommand: --seeds, --quiet, --out and --device, parsed by the
real parser of `ibsolver`, with one syntax and one meaning (issue 13: thin CLIs, consistent
flag names); --device honoured by datasize and refused clearly where CUDA is missing."""
import json

import pytest

torch = pytest.importorskip("torch")

from conftest import run_cli  # noqa: E402
from ibsolver.cli import build_parser  # noqa: E402

from dnn.cli_common import one_seed, parse_seeds  # noqa: E402

#: every dnn subcommand and the seeds it takes by default
COMMANDS = {"infoplane": [0, 1, 2, 3, 4], "usable": [0, 1, 2, 3, 4], "fisher": [0],
            "weights": [0], "task2vec": [0], "datasize": [0, 1, 2], "critical": [0, 1, 2],
            "linear": [0, 1, 2]}
#: the commands that make one run: --seeds names one seed
ONE_RUN = ("fisher", "weights", "task2vec")


def test_every_dnn_subcommand_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_the_run_flags_have_one_default_everywhere(command):
    args = build_parser().parse_args([command])
    assert args.out == f"runs/{command}"
    assert args.device == "auto"
    assert args.quiet is False
    seeds = [one_seed(args, command)] if command in ONE_RUN else parse_seeds(args.seeds)
    assert seeds == COMMANDS[command]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("quiet", ["--quiet", "-q", "--no-progress"])
def test_the_run_flags_have_one_meaning_everywhere(command, quiet):
    seeds = "1" if command in ONE_RUN else "4,2"
    args = build_parser().parse_args([command, "--seeds", seeds, quiet, "--out", "elsewhere/x",
                                      "--device", "cpu"])
    assert (args.out, args.device, args.quiet) == ("elsewhere/x", "cpu", True)
    if command in ONE_RUN:
        assert one_seed(args, command) == 0
    else:
        assert parse_seeds(args.seeds) == [4, 2]
    for device in ("cuda", "cuda:1", "auto"):
        assert build_parser().parse_args([command, "--device", device]).device == device


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_device_is_a_usage_error_naming_the_flag(command, capsys):
    code, _, err = run_cli([command, "--device", "gpu"], capsys)
    assert code == 2
    assert "--device" in err and "'gpu'" in err and "auto" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_an_out_that_is_a_file_exits_2_naming_out(command, tmp_path, capsys):
    """Every subcommand checks --out through the one output-folder check before training
    (a file there was a FileExistsError traceback in four of them)."""
    afile = tmp_path / "afile"
    afile.write_text("")
    argv = [command, "--out", afile, "--device", "cpu"]
    if command == "infoplane":  # (its checks of the task come first; these pass them)
        argv += ["--epochs", "1"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "--out" in err and "exists and is not a folder" in err
    assert afile.read_text() == ""


@pytest.mark.parametrize("command", ONE_RUN)
def test_a_one_run_command_takes_one_seed(command, tmp_path, capsys):
    parse = build_parser().parse_args
    assert one_seed(parse([command]), command) == 0
    assert one_seed(parse([command, "--seeds", "7,"]), command) == 7
    with pytest.raises(ValueError, match=rf"--seeds must name one seed: {command} makes one "
                                         r"run \(got '3', seeds 0, 1, 2\)"):
        one_seed(parse([command, "--seeds", "3"]), command)
    # the old spelling still works, with a note
    assert one_seed(parse([command, "--seed", "5"]), command) == 5
    assert "--seed is deprecated; use --seeds 5," in capsys.readouterr().err
    out = tmp_path / "o"
    code, _, err = run_cli([command, "--seed", "5", "--seeds", "1", "--out", out], capsys)
    assert code == 2 and "not allowed with argument" in err and not out.exists()


@pytest.mark.parametrize("command", ONE_RUN)
def test_several_seeds_to_a_one_run_command_exit_2_naming_seeds(command, tmp_path, capsys):
    code, _, err = run_cli([command, "--seeds", "0,1", "--quiet", "--out", tmp_path / "o"],
                           capsys)
    assert code == 2
    assert "--seeds must name one seed" in err and "'0,1'" in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_exits_2_naming_device(command, device, tmp_path, capsys):
    out = tmp_path / "o"
    code, stdout, err = run_cli([command, "--device", device, "--quiet", "--out", out], capsys)
    assert code == 2, err
    assert err.startswith(f"ibsolver {command}: error: --device {device}: CUDA is not "
                          "available")
    assert "Traceback" not in err and stdout == "" and not out.exists()


def test_datasize_trains_on_the_device_asked_for(tmp_path, capsys, monkeypatch):
    """--device reaches every run's train() (the runs here in this process, to see it)."""
    from dnn import sweep, train as train_module

    seen = []
    real = train_module.train

    def spy(task, config, **options):
        seen.append(options["device"])
        return real(task, config, **options)

    monkeypatch.setattr(train_module, "train", spy)
    monkeypatch.setattr(sweep, "map_tasks", lambda task, runs, **_: [task(r) for r in runs])
    out = tmp_path / "ds"
    code, stdout, err = run_cli(["datasize", "--sizes", "0.1,0.05", "--epochs", 2, "--records",
                                 2, "--seeds", 1, "--noise", 0, "--device", "cpu", "--quiet",
                                 "--out", out], capsys)
    assert code == 0, err
    assert seen == ["cpu", "cpu"]
    summary = json.loads((out / "datasize.json").read_text())
    assert [s["train_fraction"] for s in summary["sizes"]] == [0.05, 0.1]
    assert "act5" in stdout


def test_datasize_runs_on_cpu_in_worker_processes(tmp_path, capsys):
    out = tmp_path / "ds"
    code, _, err = run_cli(["datasize", "--sizes", "0.1", "--epochs", 2, "--records", 2,
                            "--seeds", 1, "--workers", 1, "--noise", 0, "--device", "cpu",
                            "--quiet", "--out", out], capsys)
    assert code == 0, err
    from dnn.periods import DatasizeSweep

    (recording,) = DatasizeSweep.load(out / "datasize.npz").recordings
    assert recording.device == "cpu"


# --- a usage error creates nothing; one message per mistake in every subcommand ----------

#: a bad value of each kind, per subcommand: every one exits 2 before --out is made
#: the subcommands with an --epochs flag (task2vec's is --probe-epochs)
WITH_EPOCHS = [c for c in COMMANDS if c != "task2vec"]
USAGE_ERRORS = [(command, argv) for command in COMMANDS for argv in (
    ["--seeds", "1,1"] if command not in ONE_RUN else ["--seeds", "0,1"],
    ["--threads", "0"])] + [(command, ["--epochs", "0"]) for command in WITH_EPOCHS] + [
    ("usable", ["--record-epochs", "0,99"]), ("usable", ["--n-colors", "1"]),
    ("usable", ["--rise-threshold", "-1"]), ("usable", ["--lr", "0"]),
    ("fisher", ["--hidden", "8,0"]), ("fisher", ["--record", "x"]),
    ("fisher", ["--fisher-samples", "0"]),
    ("weights", ["--hidden", ""]), ("weights", ["--betas", "1,-1"]),
    ("weights", ["--rl-seeds", "2,2"]), ("weights", ["--prior-scale", "0"]),
    ("weights", ["--delta", "1"]), ("weights", ["--rl-hidden", "x"]),
    ("task2vec", ["--tasks", "fine,nope"]), ("task2vec", ["--probe-hidden", "0"]),
    ("task2vec", ["--probe-epochs", "-1"]),
    ("datasize", ["--sizes", "0.5,0.5"]), ("datasize", ["--records", "1"]),
    ("critical", ["--removal", "0,0"]), ("critical", ["--hidden", "0"]),
    ("critical", ["--lr-decay", "2"]),
    ("linear", ["--hidden", "4,0"]), ("linear", ["--noise-var", "0"]),
    ("infoplane", ["--widths", "12,0,2"]), ("infoplane", ["--sweep", "a"]),
    ("infoplane", ["--records", "1"]), ("infoplane", ["--noise", "-1"])]


@pytest.mark.parametrize("command, argv", USAGE_ERRORS,
                         ids=[f"{c} {' '.join(a)}" for c, a in USAGE_ERRORS])
def test_a_usage_error_exits_2_and_creates_no_out_folder(command, argv, tmp_path, capsys):
    """Regression: `ibsolver critical --seeds 1,1` (and usable, fisher, weights, linear,
    datasize with a duplicate seed or --epochs 0) exited 2 but left an empty --out behind:
    every command now checks its flags before it makes the folder."""
    out = tmp_path / "runs" / command
    code, stdout, err = run_cli([command, *argv, "--quiet", "--device", "cpu", "--out", out],
                                capsys)
    assert code == 2, err
    # (argparse's usage errors print the usage first; none is an unknown flag)
    assert f"ibsolver {command}: error: " in err and "unrecognized arguments" not in err, err
    assert "Traceback" not in err and stdout == ""
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", WITH_EPOCHS)
def test_epochs_0_reads_the_same_in_every_subcommand(command, capsys):
    """One argparse type (cli_common.int_at_least) for every integer flag: the same
    sentence everywhere (there were three: '--epochs must be >= 1 (got 0)', '--epochs must
    be an integer >= 1 (got 0)' and 'epochs must be an integer >= 1 (got 0)')."""
    code, _, err = run_cli([command, "--epochs", "0"], capsys)
    assert code == 2
    assert err.splitlines()[-1] == (f"ibsolver {command}: error: argument --epochs: must be an "
                                    "integer >= 1 (got '0')")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ONE_RUN])
def test_duplicate_seeds_name_the_flag(command, tmp_path, capsys):
    code, _, err = run_cli([command, "--seeds", "1,1", "--out", tmp_path / "o"], capsys)
    assert code == 2
    assert err.splitlines()[-1] == f"ibsolver {command}: error: --seeds must be distinct (got '1,1')"


def test_parse_seeds_refuses_duplicates_by_the_flags_name():
    assert parse_seeds("3,1") == [3, 1] and parse_seeds("2") == [0, 1]
    with pytest.raises(ValueError, match=r"^--rl-seeds must be distinct \(got '0,0'\)$"):
        parse_seeds("0,0", "--rl-seeds")


def test_the_shared_argparse_types_name_what_they_want():
    import argparse

    from dnn.cli_common import POSITIVE, POSITIVE_INT, int_at_least, number_at_least

    assert POSITIVE_INT("3") == 3 and int_at_least(0)("0") == 0 and POSITIVE("0.5") == 0.5
    assert number_at_least(0.0, strict=True, below=1.0)("0.99") == 0.99
    for parse, text, message in (
            (POSITIVE_INT, "0", "must be an integer >= 1 (got '0')"),
            (POSITIVE_INT, "1.5", "must be an integer >= 1 (got '1.5')"),
            (int_at_least(2), "x", "must be an integer >= 2 (got 'x')"),
            (POSITIVE, "0", "must be a number > 0 (got '0')"),
            (POSITIVE, "nan", "must be a number > 0 (got 'nan')"),
            (POSITIVE, "inf", "must be a number > 0 (got 'inf')"),
            (number_at_least(0.0), "-1", "must be a number >= 0 (got '-1')"),
            (number_at_least(0.0, strict=True, below=1.0), "1",
             "must be a number > 0 and < 1 (got '1')")):
        with pytest.raises(argparse.ArgumentTypeError) as exc:
            parse(text)
        assert str(exc.value) == message


@pytest.mark.parametrize("command", ["usable", "fisher"])
def test_record_epochs_are_epochs_and_record_is_its_former_name(command):
    """usable and fisher take the recorded epochs themselves (--record-epochs); infoplane,
    datasize and linear take a number of log-spaced epochs (--records). The help of each
    says which; --record still works."""
    parse = build_parser().parse_args
    assert parse([command, "--record-epochs", "0,2"]).record == "0,2"
    assert parse([command, "--record", "0,2"]).record == "0,2"
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    helps = {c: " ".join(sub.choices[c].format_help().split()) for c in COMMANDS}
    assert "The epochs themselves: --records of infoplane, datasize and linear is a number" \
        in helps[command]
    for other in ("infoplane", "datasize", "linear"):
        assert "usable and fisher take the epochs themselves: --record-epochs" in helps[other]


def test_hidden_names_the_hidden_layers_everywhere_and_widths_all_layers():
    parse = build_parser().parse_args
    for command in ("fisher", "weights", "critical", "linear"):
        assert parse([command, "--hidden", "5,3"]).hidden == "5,3"
    assert parse(["linear", "--widths", "5,3"]).hidden == "5,3"  # its former name
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "unlike the --hidden of the other subcommands" in " ".join(
        sub.choices["infoplane"].format_help().split())
