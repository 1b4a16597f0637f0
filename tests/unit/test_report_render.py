"""The report's pages rendered from a hand-built RunSummary: index.html (autoescaped, plots embedded, PASS/FAIL
marks on the right rows), summary.md and the lines a run prints at its end, all from the same model."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mlip_autopipec.records import (
    ActiveLearningRecord,
    DatabaseCounts,
    ElasticFigures,
    EOSFigures,
    EOSFit,
    FinalFit,
    FormationFigures,
    GenerationRecord,
    MDStabilityFigures,
    PhononFigures,
    PotentialFiles,
    PropertiesFigures,
    PropertyPair,
    QualityBar,
    QualityCheck,
    RunSummary,
    Timings,
    ValidationFigures,
)
from mlip_autopipec.report.render import last_lines, property_lines, render_html, render_markdown, write_pages
from mlip_autopipec.trainer.parsing import TrainingMetrics

WORKDIR = Path("/runs/cu")
CONFIG_YAML = "workdir: runs/x\npath: postgresql://u:***@h/db\n"


def _summary(active_learning: bool = True) -> RunSummary:
    pair = PropertyPair(oracle=1.0, potential=1.1, error=0.1, error_percent=10.0)
    props = PropertiesFigures(
        seed="Cu_fcc",
        formula="Cu4",
        elastic_gpa=ElasticFigures(C11=pair, C12=PropertyPair(oracle=120.0)),
        vacancy_formation_ev=pair,
        surface_energy_j_per_m2={"111": pair},
        phonons=PhononFigures(frequency_rmse_thz=0.25, mesh=[4, 4, 4]),
        md_stability=MDStabilityFigures(
            completed=False, steps=40, n_steps=100, reason="γ <too> high", temperature_k=300.0, time_ps=1.0
        ),
        failures={"vacancy": "no <forces> & such"},
        oracle_calls=12,
        oracle_cached=3,
        seconds=1.5,
    )
    eos = EOSFigures(
        n_points=7,
        oracle=EOSFit(volume_per_atom=11.8, energy_per_atom=-3.7, bulk_modulus_gpa=140.0, lattice_constant=3.61),
        potential=EOSFit(volume_per_atom=11.9, energy_per_atom=-3.69, bulk_modulus_gpa=133.3, lattice_constant=3.62),
        lattice_constant_error_percent=0.277,
        bulk_modulus_error_percent=-4.79,
    )
    al = ActiveLearningRecord(
        generations=[
            GenerationRecord(
                generation=1,
                training="t",
                trajectories=4,
                candidates=30,
                selected=4,
                labelled=4,
                gamma_halts=3,
                blowups=1,
                max_gamma=9.5,
                n_labelled_total=24,
                validation_force_rmse_mev_per_angstrom=50.0,
                fit_max_epochs=16,
            )
        ],
        stop_reason="quiet for 2 generations",
        final=FinalFit(
            fit_dir=WORKDIR / "fits" / "final-a",
            start_dir=WORKDIR / "fits" / "gen1-b",
            max_epochs=40,
            n_labelled_total=24,
            validation_force_rmse_mev_per_angstrom=42.0,
        ),
    )
    checks = [
        QualityCheck(figure="validation force RMSE", value=20.0, target=15.0, unit="meV/Å", passed=False),
        QualityCheck(figure="lattice constant error", value=None, target=1.0, unit="%", passed=False),
        QualityCheck(figure="bulk modulus error", value=0.5, target=1.0, unit="%", passed=True),
    ]
    return RunSummary(
        workdir=WORKDIR,
        potential=PotentialFiles(yace=WORKDIR / "fits/x/output_potential.yace", yaml=WORKDIR / "fits/x/p.yaml"),
        fit=TrainingMetrics(train_energy_rmse_mev_per_atom=1.5, train_force_rmse_mev_per_a=20.25),
        timings=Timings(steps_s={"label": 1.04, "fit": 3.0}, total_s=5.0, oracle_s=1.0, pacemaker_s=3.0, other_s=1.0),
        active_learning=al if active_learning else None,
        counts=DatabaseCounts(
            total=5,
            by_status={"labelled": 5},
            by_source={"initial_random (generation 0)": 5},
            labelled_by_split={"train": 4, "validation": 1},
            by_seed={"Cu_fcc": {"initial_random (generation 0)": 5}},
        ),
        validation=ValidationFigures(
            n_structures=3,
            energy_rmse_mev_per_atom=1.234,
            energy_mae_mev_per_atom=1.0,
            force_rmse_mev_per_angstrom=20.0,
            force_mae_mev_per_angstrom=15.0,
        ),
        eos=eos,
        eos_by_seed={"Cu_fcc": eos, "Au": EOSFigures(note="not computed: <x>")},
        properties=props,
        properties_by_seed={"Cu_fcc": props},
        formation=FormationFigures(
            elements=["Cu", "Au"], references={"Cu": -3.0, "Au": -3.1}, n_structures=9, rmse_mev_per_atom=4.567
        ),
        quality_bar=QualityBar(passed=False, checks=checks),
        report_seconds={"eos": 0.5},
    )


class _Tables(HTMLParser):
    """The page's tables as rows of (cell text, cell class)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[tuple[str, str | None]]]] = []
        self._cell: list[str] | None = None
        self._class: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._class = [], dict(attrs).get("class")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(("".join(self._cell), self._class))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(page: str) -> dict[str, list[list[tuple[str, str | None]]]]:
    """Each table's rows by the text of its first two header cells ("figure, value")."""
    parser = _Tables()
    parser.feed(page)
    return {f"{table[0][0][0]}, {table[0][1][0]}": table[1:] for table in parser.tables}


def _texts(rows: list[list[tuple[str, str | None]]]) -> list[list[str]]:
    return [[text for text, _ in row] for row in rows]


def _png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)
    return path


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    _png(out / "parity_energy.png")
    _png(out / "eos.png")
    return out


def test_html_page_embeds_every_plot_and_marks_each_check(report_dir: Path) -> None:
    page = render_html(_summary(), CONFIG_YAML, report_dir)
    blobs = page.split('src="data:image/png;base64,')[1:]
    assert len(blobs) == 2 and all(base64.b64decode(b.split('"', 1)[0]).startswith(b"\x89PNG") for b in blobs)
    assert '<span class="fail">NOT PASSED</span>' in page
    tables = _tables(page)
    assert tables["figure, value"] == [
        [("validation force RMSE", None), ("20", None), ("15", None), ("meV/Å", None), ("FAIL", "fail")],
        [("lattice constant error", None), ("–", None), ("1", None), ("%", None), ("FAIL", "fail")],
        [("bulk modulus error", None), ("0.5", None), ("1", None), ("%", None), ("PASS", "pass")],
    ]
    assert _texts(tables["structures, energy RMSE (meV/atom)"]) == [["3", "1.234", "1", "20", "15"]]
    assert _texts(tables["seed, a oracle (Å)"]) == [
        ["Cu_fcc", "3.61", "3.62", "0.277", "140", "133.3", "-4.79", "–"],
        ["Au", "–", "–", "–", "–", "–", "–", "not computed: <x>"],
    ]
    assert _texts(tables["property, oracle"]) == [
        ["C11 (GPa)", "1", "1.1", "0.1"],
        ["C12 (GPa)", "120", "–", "–"],
        ["vacancy formation (eV)", "1", "1.1", "0.1"],
        ["surface 111 (J/m²)", "1", "1.1", "0.1"],
        ["phonon frequency RMSE (THz)", "–", "–", "0.25"],
        ["MD stability", "–", "40/100 steps", "γ <too> high"],
    ]
    assert _texts(tables["generation, trajectories"]) == [["1", "4", "30", "4", "4", "3", "1", "9.5", "24", "50", "16"]]
    assert _texts(tables["seed, source (generation)"]) == [["Cu_fcc", "initial_random (generation 0)", "5"]]
    assert _texts(tables["timing, seconds"]) == [["step label", "1.04"], ["step fit", "3"], ["report: eos", "0.5"]]
    assert _texts(tables["pacemaker figure, value"]) == [
        ["train_energy_rmse_mev_per_atom", "1.5"],
        ["train_force_rmse_mev_per_a", "20.25"],
    ]
    for text in (
        "Potential: <code>fits/x/output_potential.yace</code>",
        "oracle calls: 12 (cached: 3); 1.5 s",
        "RMSE 4.57 meV/atom",
        "Stop: quiet for 2 generations",
        "Final fit: 40 iterations",
        "workdir: runs/x",
    ):
        assert text in page, text


def test_html_page_escapes_what_the_run_wrote(report_dir: Path) -> None:
    summary = _summary()
    summary.properties_by_seed = {"<script>x</script>": summary.properties_by_seed["Cu_fcc"]}
    page = render_html(summary, "note: <b>&</b>\n", report_dir)
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "no &lt;forces&gt; &amp; such" in page and "γ &lt;too&gt; high" in page
    assert "note: &lt;b&gt;&amp;&lt;/b&gt;" in page
    assert "http" not in page.replace("postgresql://", "")  # nothing fetched from a network


def test_html_page_without_active_learning_properties_or_plots(tmp_path: Path) -> None:
    summary = _summary(active_learning=False)
    summary.properties_by_seed = {}
    page = render_html(summary, CONFIG_YAML, tmp_path)
    assert "Active learning was not run" in page and "generation, trajectories" not in _tables(page)
    assert "No properties computed" in page and "No plots." in page and "<img" not in page


def test_summary_md_and_last_lines_from_the_same_model() -> None:
    summary = _summary()
    text = render_markdown(summary)
    figures = text.split("## Figures\n\n", 1)[1].split("\n\n## Structures", 1)[0].splitlines()
    assert figures == [
        "- validation (3 structures): energy RMSE 1.23 meV/atom, force RMSE 20.0 meV/Å",
        "- equation of state: a = 3.6200 Å vs 3.6100 Å (+0.277 %), B = 133.3 GPa vs 140.0 GPa (-4.79 %)",
        "- properties of Cu_fcc (12 oracle calls, 3 cached, 1.5 s):",
        "- C11 (GPa): oracle 1, potential 1.1, error 0.1",
        "- C12 (GPa): oracle 120, potential n/a, error n/a",
        "- vacancy formation (eV): oracle 1, potential 1.1, error 0.1",
        "- surface 111 (J/m²): oracle 1, potential 1.1, error 0.1",
        "- phonon frequency RMSE (THz): oracle n/a, potential n/a, error 0.25",
        "- MD stability: oracle n/a, potential 40/100 steps, error γ <too> high",
        "- not computed: vacancy: no <forces> & such",  # Markdown is not escaped
        "- formation energies (Cu-Au, 9 structures): RMSE 4.57 meV/atom",
        "- [FAIL] validation force RMSE: 20 meV/Å (target <= 15.0 meV/Å)",
        "- [FAIL] lattice constant error: n/a % (target <= 1.0 %)",
        "- [PASS] bulk modulus error: 0.5 % (target <= 1.0 %)",
    ]
    assert text.startswith("# mlip-autopipec report\n\nWork directory: `/runs/cu`  \n")
    for line in (
        "- total: 5; by status: {'labelled': 5}",
        "- Cu_fcc, initial_random (generation 0): 5",
        "- train_force_rmse_mev_per_a: 20.25",
        "- label: 1.0",
    ):
        assert f"\n{line}\n" in text, line
    assert "train_loss" not in text  # pacemaker figures that were not reported are left out
    lines = last_lines(summary)
    assert [f"- {line.strip()}" for line in lines[:-1]] == figures
    assert lines[-1] == "potential: /runs/cu/fits/x/output_potential.yace"
    assert property_lines("Cu_fcc", summary.properties_by_seed["Cu_fcc"]) == lines[2:10]


def test_write_pages_writes_both_files(report_dir: Path) -> None:
    md, page = write_pages(_summary(), CONFIG_YAML, report_dir)
    assert (md.name, page.name) == ("summary.md", "index.html")
    assert md.read_text(encoding="utf-8") == render_markdown(_summary())
    assert page.read_text(encoding="utf-8") == render_html(_summary(), CONFIG_YAML, report_dir)
