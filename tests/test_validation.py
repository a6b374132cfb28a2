"""emlib._validation: the one set of checks every model and driver uses."""
import numpy as np
import pytest

from emlib._validation import (as_data_matrix, as_float_array, check_bool, check_callable, check_gaussian_scale,
                               check_integer, check_number, check_probability_rows, check_probability_vector)


@pytest.mark.parametrize("value", [True, np.bool_(False), 2.0, "3", None, [1], 1.5])
def test_check_integer_refuses_what_is_not_an_integer(value):
    """One validator for every integer setting: booleans and whole floats are refused too (before,
    GaussianMixture(2, chunk_size=True) was accepted)."""
    with pytest.raises(ValueError, match="n must be a positive integer"):
        check_integer(value, "n", minimum=1)


def test_check_integer_bounds_and_messages():
    assert check_integer(np.int64(3), "n", minimum=1) == 3 and isinstance(check_integer(np.int64(3), "n"), int)
    with pytest.raises(ValueError, match="k must be a non-negative integer; got -1"):
        check_integer(-1, "k", minimum=0)
    with pytest.raises(ValueError, match="m must be an integer between 1 and 5; got 6"):
        check_integer(6, "m", minimum=1, maximum=5)


@pytest.mark.parametrize("value", [None, "1e-3", True, 1j, float("nan"), float("inf"), [0.1]])
def test_check_number_refuses_what_is_not_a_finite_real_number(value):
    with pytest.raises(ValueError, match="tol must be a non-negative number"):
        check_number(value, "tol", minimum=0.0)


def test_check_number_bounds_and_zero_dimensional_arrays():
    assert check_number(np.array(0.25), "p", above=0.0, below=1.0) == 0.25
    assert check_number(np.float32(2.0), "x", minimum=1.0) == 2.0
    with pytest.raises(ValueError, match="p must be a number strictly between 0 and 1; got 1.0"):
        check_number(1.0, "p", above=0.0, below=1.0)
    with pytest.raises(ValueError, match="g must be a number >= 1"):
        check_number(0.5, "g", minimum=1.0)
    with pytest.raises(ValueError, match="s must be a positive number"):
        check_number(0.0, "s", above=0.0)


def test_callable_and_bool_checks():
    assert check_callable(None, "callback") is None
    with pytest.raises(ValueError, match="callback must be a callable or None; got str"):
        check_callable("print", "callback")
    with pytest.raises(ValueError, match="f must be a callable; got NoneType"):
        check_callable(None, "f", allow_none=False)
    assert check_bool(np.bool_(True), "flag") is True
    with pytest.raises(ValueError, match="flag must be True or False; got 1"):
        check_bool(1, "flag")


def test_masked_arrays_are_refused_or_read_as_missing():
    X = np.ma.masked_array([[1.0, 2.0], [-999.0, 3.0]], mask=[[False, False], [True, False]])
    with pytest.raises(ValueError, match="masked array"):
        as_data_matrix(X)
    np.testing.assert_array_equal(as_data_matrix(X, allow_nan=True), [[1.0, 2.0], [np.nan, 3.0]])
    with pytest.raises(ValueError, match="masked array"):
        as_float_array(X, None, "means")


@pytest.mark.parametrize("check", [lambda v: as_data_matrix(v), lambda v: as_float_array(v, None, "v"),
                                   lambda v: check_probability_rows(v)])
def test_complex_input_is_refused_not_cast(check):
    with pytest.raises(ValueError, match="complex"):
        check(np.array([[0.5 + 0j, 0.5]]))


def test_probability_vectors_sum_to_one_within_rounding_only():
    check_probability_vector(np.array([0.5, 0.5 + 1e-12]))
    with pytest.raises(ValueError, match="sum to one; they sum to 1.000001"):
        check_probability_vector(np.array([0.5, 0.500001]))


def test_scale_check_names_both_ends():
    check_gaussian_scale(np.array([[1e100, np.nan], [-1e100, 1.0]]))
    with pytest.raises(ValueError, match="as large as 2e\\+151.*Rescale X"):
        check_gaussian_scale(np.array([[2e151], [1.0]]))
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] of X vary by less than 1e-150"):
        check_gaussian_scale(np.array([[1.0, 0.0], [2.0, 1e-160]]))
