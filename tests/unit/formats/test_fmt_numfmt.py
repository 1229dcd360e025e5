import numpy as np
import pytest

from smalgos.formats._numfmt import float_strings, row_strings


@pytest.mark.parametrize("value,text", [
    (0.3, "0.3"), (1, "1.0"), (0, "0.0"), (-0.0, "-0.0"), (1e-5, "0.00001"), (1e-7, "1e-7"), (7.6, "7.6"),
    (1 / 3, "0.33333334"), (123456789, "123456790.0"), (3.4028235e38, ("3.4028235e+38", "3.4028235e38")),  # the exponent sign: orjson releases differ
    (1e-45, "1e-45"), (-2.5, "-2.5"),
])
def test_shortest_text(value, text):
    got = float_strings(np.array([value], np.float32))[0]
    assert got in text if isinstance(text, tuple) else got == text


def test_nonfinite():
    x = np.array([np.nan, np.inf, -np.inf, 1.5], np.float32)
    assert float_strings(x) == ["nan", "inf", "-inf", "1.5"]
    assert float_strings(x, "null") == ["null"] * 3 + ["1.5"]


def test_random_values_round_trip_with_numpys_shortest_digit_count():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 38, 5000)).astype(np.float32)
    strs = float_strings(x.reshape(50, 100))
    np.testing.assert_array_equal(np.array([float(s) for s in strs], np.float32), x)
    digits = lambda s: len(s.lower().split("e")[0].replace("-", "").replace(".", "").strip("0"))
    ours = np.array([digits(s) for s in strs])
    ref = np.array([digits(np.format_float_scientific(v, unique=True)) for v in x])
    np.testing.assert_array_equal(ours, ref)


def test_row_strings():
    x = np.array([[1, 0.5], [np.nan, 2]], np.float32)
    assert row_strings(x, ", ", "null", brackets=True) == ["[1.0, 0.5]", "[null, 2.0]"]
    assert row_strings(x[:, 0], ",") == ["1.0", "nan"]
