"""The same bundle on other Rego engines, and rule coverage for `mamori policy test`.

The gateway decides with regopy (rego-cpp, `gateway.policy.RegoEngine`). To show that the bundle
means one thing whatever evaluates it, its tests and decisions are also run on:

- regorus, through `opa-eval` (a test extra): it loads exactly one `.rego` file per evaluator, so
  the bundle is *flattened* into one module first (below);
- the real OPA Go engine, through `opa-golib-python-bindings` (`opa_bindings`) where it is
  installed (its metadata asks for Python >= 3.14, so it is never a declared dependency).

Flattening. Every rule `r` of package `mamori.x` becomes `mamori__x__r` in one package `flat`;
references are rewritten by a small tokenizer that skips strings and comments: `data.mamori.x.r`,
an imported alias `x.r` and an unqualified `r` inside package `mamori.x` all become `mamori__x__r`.
Data references (`data.mamori.thresholds`) stay as they are. The same pass records which rule
refers to which, which gives rule coverage.

Coverage. regopy gives no coverage, so coverage is computed per rule: a rule counts as covered
when a passing test refers to it directly or through the rules it refers to (static reachability
over the reference graph, per rule name, all of a rule's definitions together). Where the OPA
bindings are installed, OPA's own line coverage of the test run is reported beside it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.policy import (
    DECISION_ENTRYPOINT,
    Bundle,
    Decision,
    PolicyError,
    TestReport,
)

FLAT_PACKAGE = "flat"
_KEYWORDS = frozenset(
    [
        "as",
        "contains",
        "data",
        "default",
        "else",
        "every",
        "false",
        "if",
        "import",
        "in",
        "input",
        "not",
        "null",
        "package",
        "some",
        "true",
        "with",
    ]
)
_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<raw>`[^`]*`)|(?P<comment>#[^\n]*)'
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<space>\s+)|(?P<other>.)",
    re.DOTALL,
)
_HEAD = re.compile(r"^(?:default\s+)?([A-Za-z_][A-Za-z0-9_]*)")
_IMPORT = re.compile(r"^import\s+(data(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\s+as\s+([A-Za-z_][A-Za-z0-9_]*))?\s*$")
_PACKAGE = re.compile(r"^package\s+([A-Za-z_][A-Za-z0-9_.]*)\s*$")


@dataclass
class Rule:
    """One rule name of one package, with every place it is defined and what it refers to."""

    package: str
    name: str
    file: str
    lines: list[int] = field(default_factory=list)
    refs: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return f"{self.package}.{self.name}"


@dataclass
class Flattened:
    """The bundle as one module (`package flat`), and the rules found on the way."""

    source: str
    rules: dict[str, Rule]
    test_files: frozenset[str]

    @staticmethod
    def flat_name(rule_id: str) -> str:
        return rule_id.replace(".", "__")


def _split_module(name: str, source: str) -> tuple[str, list[tuple[int, str]]]:
    """(package, [(line number, line)]) with the package line and imports still in place."""
    lines = source.splitlines()
    for line in lines:
        match = _PACKAGE.match(line.strip())
        if match:
            return match.group(1), list(enumerate(lines, start=1))
    raise PolicyError(f"{name}: no package declaration")


def flatten(bundle: Bundle) -> Flattened:
    """Rewrite every module of the bundle (tests too) into one Rego module; see the module doc."""
    files = {**bundle.modules, **bundle.tests}
    parsed = {name: _split_module(name, source) for name, source in sorted(files.items())}
    packages = {package for package, _ in parsed.values()}
    rules: dict[str, Rule] = {}
    own: dict[str, set[str]] = {}
    for name, (package, lines) in parsed.items():
        for number, line in lines:
            head = _HEAD.match(line)
            if head is None or head.group(1) in _KEYWORDS or line.startswith(("package ", "import ")):
                continue
            rule = rules.setdefault(f"{package}.{head.group(1)}", Rule(package, head.group(1), name))
            rule.lines.append(number)
            own.setdefault(package, set()).add(head.group(1))

    out = [f"package {FLAT_PACKAGE}", "", "import rego.v1", ""]
    for name, (package, lines) in parsed.items():
        aliases: dict[str, str] = {}
        body: list[str] = []
        current: Rule | None = None
        for number, line in lines:
            stripped = line.strip()
            if _PACKAGE.match(stripped):
                continue
            imported = _IMPORT.match(stripped)
            if imported:
                target = imported.group(1)[len("data.") :]
                if target in packages:
                    aliases[imported.group(2) or target.rsplit(".", 1)[-1]] = target
                    continue
                raise PolicyError(f"{name}:{number}: cannot flatten an import of data that is not a package")
            if stripped.startswith("import "):
                continue  # rego.v1 (one for the flat module) and future.keywords
            head = _HEAD.match(line)
            if head is not None and head.group(1) not in _KEYWORDS:
                current = rules[f"{package}.{head.group(1)}"]
            body.append(_rewrite_line(line, package, own.get(package, set()), aliases, packages, current, rules))
        out.append(f"# --- {name} ({package})")
        out.extend(body)
        out.append("")
    return Flattened(
        source="\n".join(out),
        rules=rules,
        test_files=frozenset(bundle.tests),
    )


def _rewrite_line(
    line: str,
    package: str,
    own: set[str],
    aliases: Mapping[str, str],
    packages: set[str],
    current: Rule | None,
    rules: Mapping[str, Rule],
) -> str:
    tokens = [(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(line)]
    out: list[str] = []
    i = 0

    def refer(rule_id: str) -> str:
        if current is not None and rule_id in rules:
            current.refs.add(rule_id)
        return Flattened.flat_name(rule_id)

    def dotted(start: int) -> list[tuple[int, str]]:
        """From tokens[start] (an identifier): the chain `a.b.c` as (token index, name)."""
        chain = [(start, tokens[start][1])]
        j = start + 1
        while j + 1 < len(tokens) and tokens[j][1] == "." and tokens[j + 1][0] == "ident":
            chain.append((j + 1, tokens[j + 1][1]))
            j += 2
        return chain

    while i < len(tokens):
        kind, text = tokens[i]
        previous = next((t for k, t in reversed(tokens[:i]) if k != "space"), "")
        if kind != "ident" or previous == "." or (text in _KEYWORDS and text != "data"):
            out.append(text)
            i += 1
            continue
        chain = dotted(i)
        names = [n for _, n in chain]
        if text == "data":
            # the longest package named by data.a.b..., followed by a rule name
            for size in range(len(names) - 1, 1, -1):
                candidate = ".".join(names[1:size])
                if candidate in packages:
                    out.append(refer(f"{candidate}.{names[size]}"))
                    i = chain[size][0] + 1
                    break
            else:
                out.append(text)
                i += 1
            continue
        if text in aliases and len(chain) > 1:
            out.append(refer(f"{aliases[text]}.{names[1]}"))
            i = chain[1][0] + 1
            continue
        if text in own:
            out.append(refer(f"{package}.{text}"))
        else:
            out.append(text)
        i += 1
    return "".join(out)


# --- coverage -------------------------------------------------------------------------------------


@dataclass
class Coverage:
    """Rule coverage of the non-test modules: covered and uncovered rules by file."""

    covered: dict[str, list[Rule]]
    uncovered: dict[str, list[Rule]]

    @property
    def percent(self) -> float:
        covered = sum(len(r) for r in self.covered.values())
        total = covered + sum(len(r) for r in self.uncovered.values())
        return 100.0 * covered / total if total else 100.0


def rule_coverage(flat: Flattened, passed: Iterable[str]) -> Coverage:
    """Rules reachable from the passing tests (`package.rule` ids) over the reference graph."""
    seen: set[str] = set()
    stack = [t for t in passed if t in flat.rules]
    while stack:
        rule_id = stack.pop()
        if rule_id in seen:
            continue
        seen.add(rule_id)
        stack.extend(flat.rules[rule_id].refs - seen)
    covered: dict[str, list[Rule]] = {}
    uncovered: dict[str, list[Rule]] = {}
    for rule in flat.rules.values():
        if rule.file in flat.test_files:
            continue
        covered.setdefault(rule.file, [])
        uncovered.setdefault(rule.file, [])
        (covered if rule.id in seen else uncovered)[rule.file].append(rule)
    return Coverage(covered=covered, uncovered=uncovered)


def list_test_rules(bundle: Bundle) -> list[str]:
    """Every `package.test_*` id of the bundle's test files, in file order."""
    ids: list[str] = []
    for name, source in sorted(bundle.tests.items()):
        package, lines = _split_module(name, source)
        for _, line in lines:
            head = _HEAD.match(line)
            if head and head.group(1).startswith("test_") and f"{package}.{head.group(1)}" not in ids:
                ids.append(f"{package}.{head.group(1)}")
    return ids


# --- regorus (opa-eval) ---------------------------------------------------------------------------


class RegorusEngine:
    """The bundle on regorus through `opa-eval`, one evaluator per query over the flat module."""

    name = "regorus"

    def __init__(self, bundle: Bundle, workdir: Any) -> None:
        import opa_eval

        self.bundle = bundle
        self.flat = flatten(bundle)
        self._path = workdir / "flat.rego"
        self._path.write_text(self.flat.source, encoding="utf-8")
        self._data = json.dumps(bundle.data)
        self._evaluators: dict[str, Any] = {}
        self._opa_eval = opa_eval
        self._evaluator("data." + FLAT_PACKAGE + "." + Flattened.flat_name(_decision_id()))

    def _evaluator(self, query: str) -> Any:
        if query not in self._evaluators:
            try:
                self._evaluators[query] = self._opa_eval.OpaEval(str(self._path), self._data, query)
            except RuntimeError as exc:
                raise PolicyError(f"regorus refuses the flattened bundle: {exc}") from exc
        return self._evaluators[query]

    def evaluate(self, rule_id: str, input: Mapping[str, Any] | None = None) -> tuple[bool, Any]:
        query = f"data.{FLAT_PACKAGE}.{Flattened.flat_name(rule_id)}"
        try:
            value = self._evaluator(query).evaluate_parsed(json.dumps(dict(input or {})))
        except RuntimeError as exc:
            raise PolicyError(f"regorus failed on {rule_id}: {exc}") from exc
        return _regorus_value(value)

    def decide(self, input: Mapping[str, Any]) -> Decision:
        defined, value = self.evaluate(_decision_id(), input)
        if not defined:
            raise PolicyError(f"{DECISION_ENTRYPOINT} is undefined on regorus")
        return Decision.from_document(value, self.bundle.revision, decision_id="regorus")

    def run_tests(self) -> TestReport:
        return _run_tests(self.bundle, self.evaluate)


def _regorus_value(value: Any) -> tuple[bool, Any]:
    """opa-eval answers the value itself, or the string "<undefined>" when the rule is undefined."""
    if isinstance(value, str) and value == "<undefined>":
        return False, None
    return True, value


def _decision_id() -> str:
    return DECISION_ENTRYPOINT.replace("/", ".")


# --- the OPA Go engine (opa-golib-python-bindings), where installed --------------------------------


def opa_available() -> bool:
    try:
        import opa_bindings  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def regorus_available() -> bool:
    try:
        import opa_eval  # noqa: F401
    except ImportError:
        return False
    return True


class OpaGoEngine:
    """The bundle on the real OPA engine (Go, in process), with OPA's own coverage."""

    name = "opa"

    def __init__(self, bundle: Bundle, *, with_tests: bool = False) -> None:
        from opa_bindings import OpaEngine, OpaError

        self.bundle = bundle
        self._error = OpaError
        self._engine = OpaEngine()
        try:
            for name, source in {**bundle.modules, **(bundle.tests if with_tests else {})}.items():
                self._engine.add_policy(name, source)
            self._engine.add_data(bundle.data)
        except OpaError as exc:
            raise PolicyError(f"OPA refuses the bundle: {exc}") from exc
        self.covered_lines: dict[str, set[int]] = {}
        self.not_covered_lines: dict[str, set[int]] = {}

    def close(self) -> None:
        self._engine.close()

    def evaluate(
        self, rule_id: str, input: Mapping[str, Any] | None = None, *, coverage: bool = False
    ) -> tuple[bool, Any]:
        from opa_bindings import OpaUndefinedError

        try:
            value = self._engine.eval_document(rule_id, None if input is None else dict(input), coverage=coverage)
        except OpaUndefinedError:
            return False, None
        except self._error as exc:
            raise PolicyError(f"OPA failed on {rule_id}: {exc}") from exc
        finally:
            if coverage:
                self._collect(self._engine.last_coverage)
        return True, value

    def _collect(self, report: Any) -> None:
        files = report.get("files", {}) if isinstance(report, dict) else {}
        for file, info in files.items():
            for key, target in (("covered", self.covered_lines), ("not_covered", self.not_covered_lines)):
                for span in info.get(key) or []:
                    start, end = span["start"]["row"], span["end"]["row"]
                    target.setdefault(file, set()).update(range(start, end + 1))

    def line_coverage(self) -> dict[str, tuple[int, int]]:
        """file -> (covered lines, lines OPA counts) over every evaluation made with coverage."""
        out: dict[str, tuple[int, int]] = {}
        for file in sorted(set(self.covered_lines) | set(self.not_covered_lines)):
            covered = self.covered_lines.get(file, set())
            missing = self.not_covered_lines.get(file, set()) - covered
            out[file] = (len(covered), len(covered) + len(missing))
        return out

    def decide(self, input: Mapping[str, Any]) -> Decision:
        defined, value = self.evaluate(_decision_id(), input)
        if not defined:
            raise PolicyError(f"{DECISION_ENTRYPOINT} is undefined on OPA")
        return Decision.from_document(value, self.bundle.revision, decision_id="opa")

    def run_tests(self) -> TestReport:
        return _run_tests(self.bundle, lambda rule_id, input: self.evaluate(rule_id, input, coverage=True))


def _run_tests(bundle: Bundle, evaluate: Any) -> TestReport:
    report = TestReport()
    for test_id in list_test_rules(bundle):
        try:
            defined, value = evaluate(test_id, None)
        except PolicyError as exc:
            report.failed.append(test_id)
            report.errors[test_id] = str(exc)
            continue
        if defined and value is True:
            report.passed.append(test_id)
        else:
            report.failed.append(test_id)
            report.errors[test_id] = "undefined" if not defined else f"evaluated to {value!r}"
    return report


__all__ = [
    "Coverage",
    "Flattened",
    "OpaGoEngine",
    "RegorusEngine",
    "Rule",
    "flatten",
    "list_test_rules",
    "opa_available",
    "regorus_available",
    "rule_coverage",
]
