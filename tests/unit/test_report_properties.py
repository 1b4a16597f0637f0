"""report.properties on Cu/EMT against independent computations done here with ASE directly.

The package relaxes with a cell filter + FixSymmetry, fits stress against strain,
builds slabs with ``ase.build.surface`` on the primitive cell and phonons with
phonopy; the references below take another road each: the lattice constant from
ASE's EOS, elastic constants from the curvature of E(strain), slabs from
``ase.build.fcc111/100/110``, phonons from ``ase.phonons.Phonons``.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.calculators.emt import EMT
from ase.eos import EquationOfState
from ase.optimize import BFGS
from ase.units import GPa, _e, _hplanck

from mlip_autopipec.config.schemas.report_properties import ReportPropertiesConfig, parse_facet
from mlip_autopipec.exceptions import PropertyError
from mlip_autopipec.report.properties import (
    CachedCalculator,
    MemoryStore,
    OracleCalculator,
    compute_properties,
    elastic_constants,
    md_stability,
    phonon_plot,
    properties_summary,
    property_table,
    relax_bulk,
    symmetry,
    vacancy_formation_energy,
)

FMAX = 0.002
CONFIG = ReportPropertiesConfig(relax_fmax_ev_per_angstrom=FMAX, md_stability=None)


@pytest.fixture(scope="module")
def a0() -> float:
    """EMT copper's lattice constant (Å) from ASE's equation of state."""
    cells = []
    for x in np.linspace(0.98, 1.02, 9):
        atoms = bulk("Cu", "fcc", a=3.59 * x)
        atoms.calc = EMT()
        cells.append((atoms.get_volume(), atoms.get_potential_energy()))
    v0, _e0, _b = EquationOfState(*zip(*cells, strict=True)).fit()
    return float((4 * v0) ** (1 / 3))


@pytest.fixture(scope="module")
def oracle():
    calc = CachedCalculator(EMT(), MemoryStore())
    return compute_properties(bulk("Cu", "fcc", a=3.7), calc, CONFIG), calc


def test_bulk_relaxes_to_the_eos_lattice_constant(oracle, a0):
    res, _ = oracle
    assert len(res.bulk) == 4 and symmetry(res.bulk).international == "Fm-3m"
    np.testing.assert_allclose(res.lattice_constants, a0, rtol=2e-4)


def _curvature(a0: float, deform) -> float:
    """Second derivative of E/V (GPa) with respect to the strain amplitude, from a quartic fit."""
    eps = np.linspace(-0.01, 0.01, 9)
    ref = bulk("Cu", "fcc", a=a0, cubic=True)
    energies = []
    for e in eps:
        atoms = ref.copy()
        atoms.set_cell(ref.cell.array @ (np.eye(3) + deform(e)), scale_atoms=True)
        atoms.calc = EMT()
        energies.append(atoms.get_potential_energy())
    return 2 * np.polyfit(eps, energies, 4)[2] / ref.get_volume() / GPa


def test_elastic_constants_agree_with_the_energy_curvature(oracle, a0):
    c = oracle[0].elastic
    c11 = _curvature(a0, lambda e: np.diag([e, 0, 0]))
    c11_plus_c12 = _curvature(a0, lambda e: np.diag([e, e, 0])) / 2
    c44 = _curvature(a0, lambda e: np.array([[0, 0, 0], [0, 0, e / 2], [0, e / 2, 0]]))
    assert c.crystal_system == "cubic"
    print(
        f"\nC11 {c.c11:.2f}/{c11:.2f}, C12 {c.c12:.2f}/{c11_plus_c12 - c11:.2f}, C44 {c.c44:.2f}/{c44:.2f} GPa "
        "(ours/reference)"
    )
    assert c.c11 == pytest.approx(c11, rel=0.02)
    assert c.c12 == pytest.approx(c11_plus_c12 - c11, rel=0.02)
    assert c.c44 == pytest.approx(c44, rel=0.02)
    assert 150 < c.c11 < 200 and c.c12 < c.c11  # EMT copper: about 173, 116, 90 GPa


def test_vacancy_formation_energy_agrees_with_a_direct_relaxation(oracle, a0):
    perfect = bulk("Cu", "fcc", a=a0, cubic=True).repeat(2)
    perfect.calc = EMT()
    e_bulk = perfect.get_potential_energy()
    vac = perfect.copy()
    del vac[5]
    vac.calc = EMT()
    BFGS(vac, logfile=None).run(fmax=FMAX)
    expected = vac.get_potential_energy() - 31 / 32 * e_bulk
    v = oracle[0].vacancy
    print(f"\nvacancy {v.formation_energy_ev:.4f} / {expected:.4f} eV (ours/reference)")
    assert v.n_atoms == 32
    assert v.formation_energy_ev == pytest.approx(expected, abs=0.02)
    assert v.unrelaxed_formation_energy_ev > v.formation_energy_ev  # relaxation lowers it


@pytest.mark.parametrize(("facet", "builder"), [("111", fcc111), ("100", fcc100), ("110", fcc110)])
def test_surface_energies_agree_with_ase_slab_builders(oracle, a0, facet, builder):
    slab = builder("Cu", size=(1, 1, 9), a=a0, vacuum=7.0)
    slab.calc = EMT()
    BFGS(slab, logfile=None).run(fmax=FMAX)
    ref = bulk("Cu", "fcc", a=a0)
    ref.calc = EMT()
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    expected = (slab.get_potential_energy() - len(slab) * ref.get_potential_energy()) / (2 * area) * 16.02176634
    got = oracle[0].surfaces[facet]
    print(f"\nsurface {facet}: {got.energy_j_per_m2:.4f} / {expected:.4f} J/m² (ours/reference)")
    assert got.energy_j_per_m2 == pytest.approx(expected, rel=0.02)
    assert 0.5 < got.energy_j_per_m2 < 2.0


def test_phonon_frequencies_agree_with_ase_phonons_on_a_q_mesh(oracle, tmp_path):
    """ASE's own finite-difference phonons of the same relaxed cell and 3x3x3 supercell, at every commensurate q."""
    from ase.phonons import Phonons

    res = oracle[0]
    conv = res.bulk.copy()
    assert res.phonons.supercell_atoms == 108  # the conventional cell repeated 3x3x3 (10.8 Å)
    ph = Phonons(conv, EMT(), supercell=(3, 3, 3), delta=0.01, name=str(tmp_path / "phonon"))
    ph.run()
    ph.read(acoustic=True)
    q_conv = np.array([(i, j, k) for i in range(3) for j in range(3) for k in range(3)]) / 3.0
    theirs = np.sort(ph.band_structure(q_conv) * _e / _hplanck / 1e12, axis=1)  # eV -> THz
    # the 4-atom cell's 12 bands at q are the primitive cell's 3 bands at q + G for the 4 folded G
    prim = res.phonons.primitive
    folds = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    ours = []
    for q in q_conv:
        q_cart = (q + folds) @ conv.cell.reciprocal()
        ours.append(np.sort(res.phonons.frequencies_at(q_cart @ prim.cell.array.T).ravel()))
    ours = np.array(ours)
    print(f"\nphonons: max |ours - ase.phonons| {np.abs(ours - theirs).max():.1e} THz over {ours.size} frequencies")
    assert np.abs(ours - theirs).max() < 0.05, np.abs(ours - theirs).max()
    assert ours.max() == pytest.approx(8.1, abs=0.5)  # EMT copper's top frequency, THz


def test_oracle_results_are_cached_and_replayed(oracle):
    res, calc = oracle
    assert calc.n_computed > 20
    again = CachedCalculator(EMT(), calc.store)
    res2 = compute_properties(bulk("Cu", "fcc", a=3.7), again, CONFIG)
    assert again.n_computed == 0 and again.n_cached > 20  # the relaxations replay the same structures
    assert res2.elastic.c11 == res.elastic.c11 and res2.vacancy.formation_energy_ev == res.vacancy.formation_energy_ev


def test_the_oracle_itself_can_be_the_calculator(a0):
    from mlip_autopipec.config import EMTOracleConfig
    from mlip_autopipec.oracle import make_oracle

    atoms = bulk("Cu", "fcc", a=a0, cubic=True)
    ours = elastic_constants(atoms, OracleCalculator(make_oracle(EMTOracleConfig())))
    direct = elastic_constants(atoms, EMT())
    np.testing.assert_allclose(ours.matrix_gpa, direct.matrix_gpa, rtol=1e-9, atol=1e-9)


def test_lower_symmetry_gives_the_full_matrix_with_internal_relaxation():
    """hcp (2 atoms per primitive cell): six strains, internal coordinates relaxed, hexagonal relations hold."""
    hcp = relax_bulk(bulk("Cu", "hcp", a=2.55, c=4.16), EMT(), fmax=FMAX)
    c = elastic_constants(hcp, EMT(), fmax=FMAX)
    m = c.matrix_gpa
    assert c.crystal_system == "hexagonal" and c.relaxed_internal and c.n_structures == 24
    assert m[0, 0] == pytest.approx(m[1, 1], rel=0.01)
    assert m[0, 2] == pytest.approx(m[1, 2], rel=0.01)
    assert m[3, 3] == pytest.approx(m[4, 4], rel=0.01)
    assert m[5, 5] == pytest.approx((m[0, 0] - m[0, 1]) / 2, rel=0.01)
    np.testing.assert_allclose(m, m.T)
    assert "matrix_gpa" in c.as_dict()


def test_vacancy_of_a_compound_is_refused():
    with pytest.raises(PropertyError, match="elemental"):
        vacancy_formation_energy(bulk("CuAu", "rocksalt", a=5.0), EMT())


def test_md_stability_completes_for_a_sound_crystal(oracle):
    md = md_stability(oracle[0].bulk, EMT(), temperature_k=500, time_ps=0.1, timestep_fs=2.0, min_atoms=32)
    assert md.completed and md.stop == "completed" and md.steps == md.n_steps == 50
    assert 100 < md.mean_temperature_k < 1000


def test_md_stability_reports_a_blowup_with_its_step(oracle):
    start = oracle[0].bulk.repeat(2)
    neighbour = start.get_distances(0, range(1, len(start)), mic=True, vector=True)[
        np.argmin(start.get_distances(0, range(1, len(start)), mic=True))
    ]
    start.positions[0] += neighbour * (1 - 1.0 / np.linalg.norm(neighbour))  # one pair at 1.0 Å: EMT throws them apart
    md = md_stability(start, EMT(), temperature_k=300, time_ps=0.2, min_atoms=32)
    print("\n" + md.reason)
    assert not md.completed and md.stop == "blowup"
    assert 0 < md.steps < md.n_steps and f"step {md.steps}" in md.reason


def test_md_stability_halts_on_gamma():
    """The γ the calculator reports (as pyace's PyACECalculator with an active set does) halts the run."""

    class Graded(EMT):
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            displacement = np.linalg.norm(self.atoms.positions - start.positions, axis=1)
            self.results["gamma"] = 1.0 + 20 * displacement  # grows as the atoms leave the crystal sites

    start = bulk("Cu", "fcc", a=3.59, cubic=True).repeat((2, 2, 2))
    md = md_stability(start, Graded(), temperature_k=600, time_ps=0.5, min_atoms=32, gamma_halt=3.0)
    assert md.stop == "gamma" and not md.completed and "gamma_halt 3" in md.reason
    assert md.max_gamma >= 3.0 and 0 < md.steps < md.n_steps


def test_summary_table_and_plot(oracle, tmp_path):
    res = oracle[0]
    md = md_stability(res.bulk, EMT(), temperature_k=300, time_ps=0.02, min_atoms=4)
    summary = properties_summary(res, res, md)
    assert summary["elastic_gpa"]["C11"]["error"] == 0.0 and summary["elastic_gpa"]["C44"]["oracle"] == res.elastic.c44
    assert summary["vacancy_formation_ev"]["potential"] == res.vacancy.formation_energy_ev
    assert set(summary["surface_energy_j_per_m2"]) == {"111", "100", "110"}
    assert summary["phonons"]["frequency_rmse_thz"] == pytest.approx(0.0, abs=1e-9)
    assert summary["md_stability"] == {**summary["md_stability"], "completed": True, "steps": 10}
    rows = property_table(summary)
    assert rows["C11 (GPa)"]["oracle"] == res.elastic.c11 and rows["surface 111 (J/m²)"]["error"] == 0.0
    assert rows["MD stability"]["error"] == "completed"
    one_sided = properties_summary(res, None)
    assert one_sided["elastic_gpa"]["C11"] == {
        "oracle": res.elastic.c11,
        "potential": None,
        "error": None,
        "error_percent": None,
    }
    png = phonon_plot(res.phonons, res.phonons, tmp_path / "phonons.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_config_defaults_and_facets():
    cfg = ReportPropertiesConfig()
    assert (
        cfg.surfaces == ["111", "100", "110"]
        and cfg.elastic
        and cfg.phonons
        and cfg.md_stability is not None
        and cfg.any
    )
    assert parse_facet("1-10") == (1, -1, 0)
    for bad in (["11"], ["000"], ["111", "111"], ["abc"]):
        with pytest.raises(ValueError):
            ReportPropertiesConfig(surfaces=bad)
    with pytest.raises(ValueError):
        ReportPropertiesConfig(elastc=True)
    md = cfg.md_stability
    assert md.temperature_for([300.0, 1300.0, 900.0]) == 1300.0 and md.temperature_for(None) == 300.0
    assert md.model_copy(update={"temperature_k": 500.0}).temperature_for([1300.0]) == 500.0
    assert md.gamma_halt_for(5.0) == 5.0 and md.gamma_halt_for(None) is None
    off = ReportPropertiesConfig(elastic=False, vacancy=False, surfaces=[], phonons=False, md_stability=None)
    assert not off.any
