"""emlib.rate: the EM map and its Jacobian by central differences."""
import pytest

import emlib
from emlib import GeneticLinkage, GeneticLinkageParams

Y = emlib.datasets.genetic_linkage()


def linkage_map_derivative(pi, x=Y):
    """d M / d pi for the genetic linkage EM map M(pi) = a / (a + b), a = x_1 pi / (2 + pi) + x_4,
    b = x_2 + x_3: M' = a' b / (a + b)^2 with a' = 2 x_1 / (2 + pi)^2 (by hand)."""
    a = x[0] * pi / (2 + pi) + x[3]
    b = x[1] + x[2]
    return 2 * x[0] / (2 + pi) ** 2 * b / (a + b) ** 2


@pytest.mark.parametrize("pi", [0.1, 0.3, 0.6268214978709824, 0.9])
def test_the_jacobian_is_second_order_accurate(pi):
    """Central differences: truncation error O(h^2) ~ 1e-12 with h = 1e-6, rounding ~ eps / h ~ 1e-10.
    Forward differences would be off by O(h |M''|) ~ 1e-7, far outside 1e-9."""
    J = emlib.em_map_jacobian(GeneticLinkage(), Y, GeneticLinkageParams(pi))
    assert J.shape == (1, 1)
    assert J[0, 0] == pytest.approx(linkage_map_derivative(pi), abs=1e-9)


def test_at_the_mle_the_jacobian_is_the_fraction_of_missing_information():
    model = GeneticLinkage()
    mle = model.mle(Y)
    fraction = model.missing_information(Y, mle) / model.complete_information(Y, mle)
    assert emlib.em_map_jacobian(model, Y, mle)[0, 0] == pytest.approx(fraction, abs=1e-9)


def test_em_map_is_one_em_step():
    model = GeneticLinkage()
    assert emlib.em_map(model, Y, GeneticLinkageParams(0.5)).pi == pytest.approx(0.608247423, abs=1e-9)
