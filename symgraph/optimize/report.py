"""OptimizeReport: what an optimization did, printable.

>>> r = OptimizeReport("f", 1, 10, 7, {"add-self": 2, "log1p": 1}, passes=2, seconds=0.001)
>>> print(r)  # doctest: +ELLIPSIS
optimize f (level 1): 10 -> 7 ops (-30.0%), 2 passes, ... ms
  add-self                     2
  log1p                        1
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OptimizeReport:
    """Operation counts before/after and how often each rule fired.

    Attributes:
        name: the Function's name (or ``"simplify"``).
        level: optimization level (or None when rules were named).
        n_ops_before, n_ops_after: operation nodes before and after.
        counts: rule name -> number of rewrites fired.
        passes: engine passes to the fixed point.
        seconds: wall time of the optimization (including the new Function's Tape).
        rewrite_seconds: wall time of the rewriting alone.
    """

    name: str
    level: int | None
    n_ops_before: int
    n_ops_after: int
    counts: dict = field(default_factory=dict)
    passes: int = 0
    seconds: float = 0.0
    rewrite_seconds: float = 0.0

    @property
    def n_rewrites(self) -> int:
        """Total number of rewrites fired."""
        return sum(self.counts.values())

    def __str__(self) -> str:
        before, after = self.n_ops_before, self.n_ops_after
        change = f" ({100.0 * (after - before) / before:+.1f}%)" if before else ""
        lines = [f"optimize {self.name} (level {self.level}): {before} -> {after} ops{change}, "
                 f"{self.passes} passes, {1e3 * self.seconds:.1f} ms"]
        for name, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {name:<26} {n:>3}")
        return "\n".join(lines)
