"""The step learning-rate schedule of the MXNet vision algorithms (`lr_scheduler_step`,
`lr_scheduler_factor`): the rate is multiplied by `factor` at each listed epoch.

    StepSchedule.parse("10, 20", 0.1, "lr_scheduler_step").rate(base, epoch)   # epoch counted from 0
"""

from __future__ import annotations

from dataclasses import dataclass

from smalgos.errors import ClientError


@dataclass(frozen=True)
class StepSchedule:
    steps: tuple[int, ...] = ()
    factor: float = 0.1

    @classmethod
    def parse(cls, text: str | None, factor: float, name: str = "lr_scheduler_step") -> "StepSchedule":
        """Comma-separated positive epochs in increasing order ("10, 20"); None or blank: no steps."""
        if text is None or not str(text).strip():
            return cls((), factor)
        steps = []
        for part in str(text).split(","):
            try:
                step = int(part.strip())
            except ValueError:
                raise ClientError(f"Hyperparameter {name}: {part.strip()!r} in {text!r} is not an epoch "
                                  "number (comma-separated positive integers, e.g. \"10, 20\")") from None
            if step < 1 or (steps and step <= steps[-1]):
                raise ClientError(f"Hyperparameter {name}: {text!r} must list positive epochs in increasing order")
            steps.append(step)
        return cls(tuple(steps), factor)

    def rate(self, base: float, epoch: int) -> float:
        """The rate for 0-based `epoch`: base × factor^(number of steps ≤ epoch)."""
        return base * self.factor ** sum(1 for s in self.steps if epoch >= s)
