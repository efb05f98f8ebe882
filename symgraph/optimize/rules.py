"""Rule records, rule sets and rule selection.

A :class:`Rule` is data: a name, a pattern (:mod:`.pattern`), a replacement
computed from the match, an optional guard, one line of doc with its domain
conditions, the set it belongs to and whether it is on by default.  The
rules themselves live in one table per set (:mod:`.fold`,
:mod:`.canonicalize`, :mod:`.specialize`, :mod:`.stabilize`); the engine
(:mod:`.engine`) knows nothing about any particular rule.

Default rules are IEEE-safe: they never turn a finite result into NaN/inf or
a NaN/inf result into anything else, keep signed zeros, and change finite
values by a few ulps at most (stabilize rules: they may make a value *more*
accurate, e.g. replace a spurious overflow by the true finite value).  Rules
that are only identities of real arithmetic (``x - x -> 0``, reassociation)
are off by default; ``level=2`` or naming them turns them on.

>>> [r.name for r in select(["fold"])][:3]
['fmin-self', 'fmax-self', 'abs-abs']
>>> len(select("all")) > len(select(None))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..errors import OptimizerOptionError
from .pattern import Match, Pat

SET_NAMES = ("stabilize", "fold", "canonicalize", "specialize")


@dataclass(frozen=True, eq=False)
class Rule:
    """One rewrite: ``pattern`` -> ``replace(match)`` where ``guard(match)`` holds.

    Attributes:
        name: unique, kebab-case (``"log1p"``).
        pattern: left-hand side (:class:`~symgraph.optimize.pattern.Pat`).
        replace: ``replace(m) -> Expr | float | None`` (None: does not apply).
        doc: one line: the rewrite and its domain conditions.
        set: the rule set (one of ``SET_NAMES``).
        default: on by default (IEEE-safe, see module doc).
        guard: ``guard(m) -> bool``, checked before ``replace``.
        needs_uses: the rule reads use counts of the whole graph (``m.ctx.uses``).
    """

    name: str
    pattern: Pat
    replace: Callable[[Match], Any]
    doc: str
    set: str = "fold"
    default: bool = True
    guard: Callable[[Match], bool] | None = None
    needs_uses: bool = False

    def __repr__(self) -> str:
        return f"Rule({self.name}: {self.pattern})"


def rule(name: str, pattern: Pat, replace: Callable[[Match], Any], doc: str, *,
         guard: Callable[[Match], bool] | None = None, default: bool = True,
         needs_uses: bool = False) -> Rule:
    """A rule of the set named by the caller's table (set filled in by :func:`table`).

    >>> from symgraph.optimize.pattern import var
    >>> rule("id", var("x"), lambda m: m.x, "x -> x").default
    True
    """
    return Rule(name, pattern, replace, doc, "", default, guard, needs_uses)


def table(set_name: str, rules: Iterable[Rule]) -> list[Rule]:
    """The rules of one set, stamped with its name.

    >>> from symgraph.optimize.pattern import var
    >>> table("fold", [rule("id", var("x"), lambda m: m.x, "x -> x")])[0].set
    'fold'
    """
    if set_name not in SET_NAMES:
        raise ValueError(f"unknown rule set {set_name!r}")
    return [Rule(r.name, r.pattern, r.replace, r.doc, set_name, r.default, r.guard, r.needs_uses) for r in rules]


def all_rules() -> list[Rule]:
    """Every rule, in priority order (stabilize, fold, canonicalize, specialize).

    >>> len({r.name for r in all_rules()}) == len(all_rules())
    True
    """
    from . import canonicalize, fold, specialize, stabilize

    return stabilize.RULES + fold.RULES + canonicalize.RULES + specialize.RULES


def select(rules: Any = None) -> list[Rule]:
    """The rules named by ``rules``, in priority order.

    ``None`` or ``"default"``: every default rule.  ``"all"``: every rule.
    A set name (``"fold"``): the default rules of that set.  A rule name:
    that rule (default or not).  A :class:`Rule`: itself.  A list combines.

    >>> [r.name for r in select(["sub-self"])]
    ['sub-self']
    >>> select("nonsense")
    Traceback (most recent call last):
    ...
    symgraph.errors.OptimizerOptionError: unknown rule or rule set 'nonsense'; expected 'default', 'all', a set name (stabilize, fold, canonicalize, specialize) or a rule name (see docs/rules.md)
    """
    everything = all_rules()
    if rules is None:
        rules = ["default"]
    elif isinstance(rules, (str, Rule)):
        rules = [rules]
    by_name = {r.name: r for r in everything}
    chosen: set[int] = set()
    extra: list[Rule] = []
    for item in rules:
        if isinstance(item, Rule):
            if by_name.get(item.name) is item:
                chosen.add(id(item))
            else:
                extra.append(item)
        elif item == "default":
            chosen.update(id(r) for r in everything if r.default)
        elif item == "all":
            chosen.update(id(r) for r in everything)
        elif item in SET_NAMES:
            chosen.update(id(r) for r in everything if r.set == item and r.default)
        elif isinstance(item, str) and item in by_name:
            chosen.add(id(by_name[item]))
        else:
            raise OptimizerOptionError(
                f"unknown rule or rule set {item!r}; expected 'default', 'all', a set name "
                f"({', '.join(SET_NAMES)}) or a rule name (see docs/rules.md)")
    return [r for r in everything if id(r) in chosen] + extra


def rules_for_level(level: Any) -> list[Rule]:
    """Rules of an optimization level: 1 the default rules, 2 every rule.

    >>> len(rules_for_level(2)) == len(all_rules())
    True
    """
    if isinstance(level, bool) or not isinstance(level, int) or level not in (1, 2):
        raise OptimizerOptionError(f"optimization level must be 0, 1 or 2, got {level!r}")
    return select("default" if level == 1 else "all")


def rules_markdown() -> str:
    """The rule table as Markdown (docs/rules.md is this text; a test keeps them equal).

    >>> "| `log1p` |" in rules_markdown()
    True
    """
    lines = ["# Optimizer rules", "",
             "Generated from the rule tables in `symgraph/optimize/` by "
             "`symgraph.optimize.rules.rules_markdown()`; a test keeps this file in sync.", "",
             "Levels: `F.optimize(0)` does nothing; `1` (the default) runs every rule marked *default*; "
             "`2` runs every rule. `sg.simplify(e, rules=...)` takes `\"default\"`, `\"all\"`, set names "
             "(their default rules) and rule names.", "",
             "Default rules are IEEE-safe: the same NaN and infinities (with sign) and signed zeros as the "
             "original, finite values within 3 ulps (each rule states its bound). Default `stabilize` rules "
             "may in addition differ where the original loses accuracy (cancellation, spurious over/underflow): "
             "there they give the accurate value, which may be a nonzero where the original gave a zero, or a "
             "finite value where it gave an infinity of the same sign; never NaN, an infinity, or a zero of the "
             "other sign. Rules off by default are identities of real arithmetic that change results on some "
             "inputs; their conditions say where.", "",
             "Construction (`sg.apply`, run on every rebuilt node) already folds constants and applies the "
             "exact identities `x - 0.0`, `x + (-0.0)`, `-0.0 - x -> -x`, `x * 1`, `x / 1`, `x * -1 -> -x`, "
             "`-(-x) -> x`, `x ** 0 -> 1`, `x ** 1` and trivial `if_else`; `x + 0.0 -> x` only where x cannot "
             "be -0.0 and `0.0 - x -> -x` only where x cannot be +0.0 (`-0.0 + 0.0` is +0.0). Two construction "
             "folds are not IEEE: `x * 0 -> 0` and `0 / x -> 0` drop NaN and infinities (`inf * 0` and `0 / 0` "
             "are NaN) and the sign of the zero (they give -0.0, the zero that vanishes exactly from sums; "
             "`2 * 0` is +0.0); derivative sparsity relies on them (a zero partial removes a term, as in CasADi "
             "and SymPy). See docs/design.md, core.", ""]
    for set_name in SET_NAMES:
        lines += [f"## {set_name}", "", "| rule | pattern | default | rewrite and conditions |",
                  "|---|---|---|---|"]
        for r in all_rules():
            if r.set == set_name:
                doc = r.doc.replace("|", "\\|")
                lines.append(f"| `{r.name}` | `{r.pattern}` | {'yes' if r.default else 'no'} | {doc} |")
        lines.append("")
    return "\n".join(lines)
