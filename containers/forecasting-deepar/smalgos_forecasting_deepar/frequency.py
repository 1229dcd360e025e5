"""AWS's `time_freq` in pandas' and GluonTS's spellings.

AWS writes hours as `H` (`2H`); pandas 3 refuses `H` and wants `h`. Monthly series are `Period`s of
freq `M`, but GluonTS looks lags and time features up through `pandas.tseries.frequencies.to_offset`,
which pandas 3 refuses `M` (the offset is `ME`, month end, on pandas >= 2.2 as well); the lags and
time features of `ME` are those GluonTS gives `M` on pandas 2.3 (checked: identical lists).
`W` is pandas' `W-SUN` (weeks ending on Sunday); AWS's own weekly anchor is not documented.
Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .declaration import TIME_FREQ_PATTERN

# AWS's unit → (pandas Period freq, the offset alias GluonTS's lag/time-feature lookup needs).
_UNITS = {"M": ("M", "ME"), "W": ("W", "W"), "D": ("D", "D"), "H": ("h", "h"), "min": ("min", "min")}


@dataclass(frozen=True)
class Frequency:
    """A parsed `time_freq`: `multiple` × `unit` (AWS's unit: M, W, D, H or min)."""

    multiple: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> "Frequency":
        m = re.fullmatch(TIME_FREQ_PATTERN, text)
        if m is None:
            raise ValueError(f"time_freq {text!r} is not a multiple of M, W, D, H or min")
        return cls(int(m.group(1) or 1), m.group(2))

    def _spell(self, alias: str) -> str:
        return alias if self.multiple == 1 else f"{self.multiple}{alias}"

    @property
    def period_freq(self) -> str:
        """pandas' Period frequency: `2h`, `M`, `W`, `15min`."""
        return self._spell(_UNITS[self.unit][0])

    @property
    def offset_freq(self) -> str:
        """The spelling GluonTS's `get_lags_for_frequency` / `time_features_from_frequency_str` accept
        under pandas 3 (`ME` for monthly)."""
        return self._spell(_UNITS[self.unit][1])

    def __str__(self) -> str:
        return self._spell(self.unit)
