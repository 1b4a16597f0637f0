"""Pure parsers of pacemaker's output, on logs and tables captured from real runs (tests/data/pacemaker_*)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlip_autopipec.trainer.parsing import (
    ProgressParser,
    metrics_from_tables,
    parse_error,
    parse_final_metrics,
    parse_metrics_table,
    parse_progress,
    parse_reference_energy,
    prediction_errors,
    split_complete_lines,
    split_lines,
    tail,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def read(name: str) -> str:
    return (DATA / name).read_bytes().decode()  # raw: keep the \r that read_text() would translate


# tensorpot fit: 18 train + 2 test structures, maxiter 100, display_step 10
def test_progress_of_a_tensorpot_fit():
    reports = parse_progress(read("pacemaker_tensorpot.log"))
    train = [r for r in reports if r.phase == "train"]
    test = [r for r in reports if r.phase == "test"]
    assert [r.iteration for r in train] == list(range(101))  # every iteration once, none twice
    assert [r.iteration for r in test] == list(range(0, 101, 10))
    assert train[0].loss == pytest.approx(4.1921e-02)
    assert train[0].energy_rmse_mev_per_atom == pytest.approx(59.53)
    assert train[0].force_rmse_mev_per_a == pytest.approx(506.98)
    assert train[-1].loss < train[0].loss / 100
    assert test[-1].energy_rmse_mev_per_atom == pytest.approx(2.69)
    assert test[-1].force_rmse_mev_per_a == pytest.approx(8.76)


def test_progress_of_a_ladder_fit_restarts_per_step():
    train = [r for r in parse_progress(read("pacemaker_ladder.log")) if r.phase == "train"]
    iterations = [r.iteration for r in train]
    assert iterations.count(0) == 3  # three ladder steps: 4, 8, 10 functions
    assert max(iterations) == 5


def test_progress_of_a_pyace_fit_with_carriage_returns():
    text = read("pacemaker_pyace.log")
    assert "\r" in text  # the pyace backend redraws "Eval N: loss=..." with \r
    train = [r for r in parse_progress(text) if r.phase == "train"]
    assert [r.iteration for r in train] == [0, 1, 2, 3, 4, 5]


def test_parser_ignores_unrelated_lines():
    parser = ProgressParser()
    for line in ["", "Iteration: foo", "   RMSE:   1.0  1.0  2.0  2.0", "2026 - root - INFO - Fitting done"]:
        assert parser.feed(line) is None


def test_final_metrics_from_the_log():
    m = parse_final_metrics(read("pacemaker_tensorpot.log"))
    assert m.train_energy_rmse_mev_per_atom == pytest.approx(1.87)
    assert m.train_force_rmse_mev_per_a == pytest.approx(13.36)
    assert m.test_energy_rmse_mev_per_atom == pytest.approx(2.69)
    assert m.test_force_rmse_mev_per_a == pytest.approx(8.76)
    assert m.train_loss == pytest.approx(3.0157e-05)
    assert m.n_functions == 10


def test_final_metrics_of_a_ladder_fit_are_the_last_step():
    m = parse_final_metrics(read("pacemaker_ladder.log"))
    assert m.train_energy_rmse_mev_per_atom == pytest.approx(16.28)
    assert m.train_force_rmse_mev_per_a == pytest.approx(79.79)
    assert m.n_functions == 10
    assert m.test_energy_rmse_mev_per_atom is None  # no test set in that run


def test_final_metrics_absent_when_the_fit_did_not_finish():
    assert parse_final_metrics(read("pacemaker_broken_dataset.log")) is None


def test_metrics_tables_agree_with_the_log():
    m = metrics_from_tables(read("pacemaker_cycle_metrics.txt"), read("pacemaker_test_cycle_metrics.txt"))
    log = parse_final_metrics(read("pacemaker_tensorpot.log"))
    assert m.train_energy_rmse_mev_per_atom == pytest.approx(1.872982209425179)
    assert m.train_force_rmse_mev_per_a == pytest.approx(13.362307201142133)
    assert m.test_energy_rmse_mev_per_atom == pytest.approx(2.691581173513685)
    assert m.test_force_rmse_mev_per_a == pytest.approx(8.760687040119244)
    for field in (
        "train_energy_rmse_mev_per_atom",
        "train_force_rmse_mev_per_a",
        "test_energy_rmse_mev_per_atom",
        "test_force_rmse_mev_per_a",
    ):
        assert getattr(m, field) == pytest.approx(getattr(log, field), abs=0.006)  # the log rounds to 0.01


def test_ladder_table_last_row_and_empty_test_table():
    m = metrics_from_tables(read("pacemaker_ladder_cycle_metrics.txt"), read("pacemaker_ladder_test_cycle_metrics.txt"))
    assert m.train_energy_rmse_mev_per_atom == pytest.approx(16.280153024584187)
    assert m.n_functions == 10
    assert m.test_energy_rmse_mev_per_atom is None
    assert parse_metrics_table(read("pacemaker_ladder_test_cycle_metrics.txt")) is None


def test_metrics_table_with_a_truncated_row_is_an_error():
    header, row = read("pacemaker_cycle_metrics.txt").splitlines()[:2]
    with pytest.raises(ValueError, match="columns"):
        parse_metrics_table(header + "\n" + " ".join(row.split()[:5]))


def test_prediction_errors_match_what_pacemaker_prints():
    # test_pred of the pyace run, whose test errors pacemaker does not print: recompute them
    df = pd.read_pickle(DATA / "pacemaker_test_pred.pckl.gzip", compression="gzip")
    e, f = prediction_errors(df)
    assert e == pytest.approx(41.6497845785, rel=1e-6)
    assert f == pytest.approx(94.2903923059, rel=1e-6)


def test_pacemakers_own_error_message():
    assert parse_error(read("pacemaker_broken_dataset.log")) == "ValueError: Column `forces` not found in dataset"
    assert parse_error(read("pacemaker_tensorpot.log")) is None
    assert (
        parse_error("2026-01-01 10:00:00,000 - root - ERROR - Error while plotting\nmore\n") == "Error while plotting"
    )


def test_reference_energy_from_potential_metadata():
    ref = parse_reference_energy(read("pacemaker_output_potential_refenergy.yaml"))
    assert set(ref) == {"Cu", "shift"}
    assert ref["Cu"] == pytest.approx(0.05274078122496825)
    assert parse_reference_energy(read("pacemaker_output_potential.yaml")) is None


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_reading_in_chunks_gives_the_same_lines(chunk):
    text = read("pacemaker_pyace.log")[:20000]
    lines, rest = [], ""
    for i in range(0, len(text), chunk):
        done, rest = split_complete_lines(rest + text[i : i + chunk])
        lines.extend(done)
    lines.append(rest)
    assert lines == split_lines(text)


def test_tail():
    assert tail("a\nb\nc\n\n", 2) == "b\nc"
    assert tail(read("pacemaker_broken_dataset.log"), 30).count("\n") == 29
