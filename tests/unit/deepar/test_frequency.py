"""AWS's time_freq in pandas 3's spellings: Period frequencies and the offsets GluonTS looks lags up by."""
import pandas as pd
import pytest
from pandas.tseries.frequencies import to_offset

from smalgos_forecasting_deepar.frequency import Frequency


@pytest.mark.parametrize("aws,period,offset,first", [
    ("H", "h", "h", "2021-03-01 05:00"), ("2H", "2h", "2h", "2021-03-01 05:00"), ("D", "D", "D", "2021-03-01"),
    ("W", "W", "W", "2021-03-01/2021-03-07"), ("M", "M", "ME", "2021-03"), ("15min", "15min", "15min", "2021-03-01 05:00"),
])
def test_spellings_pandas_accepts(aws, period, offset, first):
    freq = Frequency.parse(aws)
    assert (freq.period_freq, freq.offset_freq, str(freq)) == (period, offset, aws)
    assert str(pd.Period("2021-03-01 05:00:00", freq=freq.period_freq)) == first
    to_offset(freq.offset_freq)  # GluonTS's lag and time-feature lookups call this


def test_pandas_3_refuses_aws_spellings():
    """Why the mapping exists (pandas >= 3): `H` is gone, and `M` is no offset alias any more."""
    if int(pd.__version__.split(".")[0]) < 3:
        pytest.skip("pandas 2 still reads H and M")
    for spelling in ("H", "2H", "M"):
        with pytest.raises(ValueError):
            to_offset(spelling)


def test_refused():
    with pytest.raises(ValueError, match="time_freq '5S'"):
        Frequency.parse("5S")
