"""BG/NBD and Gamma-Gamma against published values and simulated data with known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from models.btyd import BetaGeo, GammaGamma, simulate_bgnbd

pytestmark = pytest.mark.pure


def test_bgnbd_matches_the_published_cdnow_example():
    # Fader, Hardie & Lee (2005): CDNOW parameters (per week); a customer with x=2, t_x=30.43,
    # T=38.86 weeks expects 1.226 purchases in the next 39 weeks.
    model = BetaGeo(r_=0.243, alpha_=4.414, a_=0.793, b_=2.426)
    got = model.expected_purchases(39 * 7, [2], [30.43 * 7], [38.86 * 7])
    assert got[0] == pytest.approx(1.226, abs=0.002)


def test_no_purchase_probability_is_a_churn_score_where_p_alive_is_not():
    model = BetaGeo(r_=0.243, alpha_=4.414, a_=0.793, b_=2.426)
    # Two one-time buyers: one bought yesterday, one a year ago.
    x, t_x, T = np.array([0, 0]), np.array([0, 0]), np.array([1, 365])
    assert np.allclose(model.p_alive(x, t_x, T), 1.0)  # P(alive) cannot tell them apart
    quiet = model.prob_no_purchase(60, x, t_x, T)
    assert quiet[1] > quiet[0] + 0.05  # the long-silent one is likelier to stay quiet
    # A frequent buyer who went silent long ago is likelier to stay quiet than one seen last week.
    lapsed = model.prob_no_purchase(60, [10], [100], [365])[0]
    recent = model.prob_no_purchase(60, [10], [360], [365])[0]
    assert lapsed > recent + 0.3
    assert np.all((quiet >= 0) & (quiet <= 1))


def test_bgnbd_recovers_simulated_parameters():
    x, t_x, T = simulate_bgnbd(3000, r=0.8, alpha=4.0, a=0.8, b=2.5, T_days=52 * 7, seed=1)
    fitted = BetaGeo().fit(x, t_x, T)
    r, alpha, a, b = fitted.params_
    assert r == pytest.approx(0.8, rel=0.25)
    assert alpha == pytest.approx(4.0, rel=0.3)
    # a/(a+b) is the mean dropout probability per purchase
    assert a / (a + b) == pytest.approx(0.8 / 3.3, rel=0.3)
    # calibration: the fitted model's expected purchases in the next 26 weeks match a simulation
    # continued from the same customers' population to within 15 % in total.
    x2, _, _ = simulate_bgnbd(3000, r=0.8, alpha=4.0, a=0.8, b=2.5, T_days=78 * 7, seed=1)
    expected = fitted.expected_purchases(26 * 7, x, t_x, T).sum()
    assert expected == pytest.approx((x2 - x).sum(), rel=0.15)


def test_gamma_gamma_recovers_simulated_parameters():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 10, 3000)
    nu = rng.gamma(6.0, 1 / 4.0, 3000)  # q = 6, gamma = 4
    m = np.array([rng.gamma(6.0 * k, 1 / (v * k)) for k, v in zip(n, nu)])  # p = 6
    gg = GammaGamma().fit(n, m)
    assert gg.q_ == pytest.approx(6.0, rel=0.3)
    # the population mean order value p*gamma/(q-1) is what the fallback LTV leans on
    assert gg.p_ * gg.v_ / (gg.q_ - 1) == pytest.approx(6.0 * 4.0 / 5.0, rel=0.1)
    # shrinkage: one purchase is pulled towards the mean, many purchases stay near their own mean
    pop = gg.p_ * gg.v_ / (gg.q_ - 1)
    one, many = gg.expected_value([1, 50], [3 * pop, 3 * pop])
    assert pop < one < many < 3 * pop + 1e-9


def test_save_load_round_trip(tmp_path):
    bg = BetaGeo(r_=0.3, alpha_=5.0, a_=0.9, b_=2.0)
    bg.save(tmp_path)
    again = BetaGeo.load(tmp_path)
    assert again.params_ == bg.params_
