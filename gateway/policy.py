"""The policy engine: one decision document from one input document (STYLE.md points 9-12).

The gateway sends `{principal, stage, request, findings}` and reads `data.mamori.decision.decision`,
`{action, reasons[{code, detector, message}], obligations}`, from an OPA bundle (`policies/`).
Two engines implement the same `PolicyEngine` protocol:

- `RegoEngine` evaluates the bundle in process with regopy (rego-cpp), compiled once per load.
- `OpaServerEngine` asks an OPA server over its REST API (opa-python-client, keep-alive session).

Every failure (bad bundle, evaluation error, undefined or malformed decision, unreachable server)
raises `PolicyError`; the gateway turns it into `Decision.system_block(...)` (fail closed).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args, runtime_checkable
from urllib.parse import urlsplit

import yaml

Action = Literal["allow", "redact", "escalate", "block"]
ACTIONS: frozenset[str] = frozenset(get_args(Action))

DECISION_PACKAGE = "mamori/decision"
DECISION_RULE = "decision"
DECISION_ENTRYPOINT = f"{DECISION_PACKAGE}/{DECISION_RULE}"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PACKAGE_LINE = re.compile(r"^package\s+([A-Za-z_][A-Za-z0-9_.]*)\s*$", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)
_DATA_FILES = ("data.json", "data.yaml", "data.yml")


class PolicyError(Exception):
    """The policy could not produce a valid decision: the gateway must fail closed."""


@dataclass(frozen=True)
class Reason:
    """Why a decision was taken: a stable `code`, the detector (or "policy") and a message."""

    code: str
    detector: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "detector": self.detector, "message": self.message}


@dataclass(frozen=True)
class Decision:
    """One policy decision, with the id and bundle revision that an audit record keeps."""

    action: Action
    reasons: tuple[Reason, ...]
    obligations: Mapping[str, Any] = field(hash=False)
    decision_id: str
    revision: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "revision": self.revision,
            "action": self.action,
            "reasons": [r.to_dict() for r in self.reasons],
            "obligations": _thaw(self.obligations),
        }

    @classmethod
    def system_block(cls, code: str, detector: str, message: str, revision: str) -> Decision:
        """A block made by the gateway itself (fail closed), e.g. on a detector or policy error."""
        return cls(
            action="block",
            reasons=(Reason(code=code, detector=detector, message=message),),
            obligations=MappingProxyType({}),
            decision_id=str(uuid.uuid4()),
            revision=revision,
        )

    @classmethod
    def from_document(cls, document: Any, revision: str, decision_id: str | None = None) -> Decision:
        """Validate a decision document from the policy; PolicyError if its shape is wrong."""
        if not isinstance(document, Mapping):
            raise PolicyError(f"malformed decision: expected an object, got {type(document).__name__}")
        action = document.get("action")
        if action not in ACTIONS:
            raise PolicyError(f"malformed decision: unknown action {action!r}")
        raw_reasons = document.get("reasons")
        if not isinstance(raw_reasons, list):
            raise PolicyError("malformed decision: reasons is not a list")
        reasons: list[Reason] = []
        for raw in raw_reasons:
            if not isinstance(raw, Mapping) or not all(
                isinstance(raw.get(k), str) for k in ("code", "detector", "message")
            ):
                raise PolicyError(f"malformed decision: bad reason {raw!r}")
            reasons.append(Reason(code=raw["code"], detector=raw["detector"], message=raw["message"]))
        obligations = document.get("obligations")
        if not isinstance(obligations, Mapping):
            raise PolicyError("malformed decision: obligations is not an object")
        if action != "allow" and not reasons:
            raise PolicyError(f"malformed decision: action {action!r} without a reason")
        return cls(
            action=action,
            reasons=tuple(reasons),
            obligations=_freeze(obligations),
            decision_id=decision_id or str(uuid.uuid4()),
            revision=revision,
        )


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Bundle:
    """An OPA bundle read from disk: Rego modules (tests apart), the data document, the revision."""

    root: Path
    modules: dict[str, str]
    tests: dict[str, str]
    data: dict[str, Any]
    revision: str
    roots: tuple[str, ...] = ("",)


@dataclass
class TestReport:
    """The outcome of the bundle's Rego tests, by `package.rule` name."""

    __test__ = False  # not a pytest test class

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and bool(self.passed)


def default_bundle_dir() -> Path:
    """The bundle shipped with Mamori: `policies/` beside the `gateway` package."""
    return Path(__file__).resolve().parent.parent / "policies"


def load_bundle(path: Path) -> Bundle:
    """Read an OPA bundle directory: `.manifest`, `data.json`/`data.yaml` files and `*.rego`."""
    root = Path(path)
    if not root.is_dir():
        raise PolicyError(f"policy bundle {root} is not a directory")
    manifest: dict[str, Any] = {}
    manifest_path = root / ".manifest"
    if manifest_path.exists():
        try:
            loaded = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PolicyError(f"{manifest_path}: not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise PolicyError(f"{manifest_path}: expected a JSON object")
        manifest = loaded
    roots_raw = manifest.get("roots", [""])
    if not isinstance(roots_raw, list) or not all(isinstance(r, str) for r in roots_raw):
        raise PolicyError(f"{manifest_path}: roots must be a list of strings")
    roots = tuple(r.strip("/") for r in roots_raw)

    modules: dict[str, str] = {}
    tests: dict[str, str] = {}
    for file in sorted(root.rglob("*.rego")):
        rel = file.relative_to(root).as_posix()
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{file}: cannot read: {exc}") from exc
        match = _PACKAGE_LINE.search(source)
        if match is None:
            raise PolicyError(f"{file}: no package declaration")
        _check_root(match.group(1).replace(".", "/"), roots, f"{file}: package {match.group(1)}")
        (tests if rel.endswith("_test.rego") else modules)[rel] = source
    if not modules:
        raise PolicyError(f"policy bundle {root} holds no .rego module")

    data: dict[str, Any] = {}
    for file in sorted(p for p in root.rglob("*") if p.name in _DATA_FILES):
        prefix = list(file.parent.relative_to(root).parts)
        if prefix:
            _check_root("/".join(prefix), roots, str(file))
        document = _read_data_file(file)
        if not prefix:
            for key in document:
                _check_root(str(key), roots, f"{file}: top-level key {key!r}")
        _merge_at(data, prefix, document, file)

    revision = manifest.get("revision")
    if revision is None:
        digest = hashlib.sha256()
        for name, text in sorted({**modules, **tests}.items()):
            digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        digest.update(json.dumps(data, sort_keys=True).encode())
        revision = f"sha256:{digest.hexdigest()[:16]}"
    if not isinstance(revision, str):
        raise PolicyError(f"{manifest_path}: revision must be a string")
    return Bundle(root=root, modules=modules, tests=tests, data=data, revision=revision, roots=roots)


def _check_root(path: str, roots: tuple[str, ...], what: str) -> None:
    if any(r == "" or path == r or path.startswith(r + "/") for r in roots):
        return
    raise PolicyError(f"{what} lies outside the bundle roots {list(roots)}")


def _read_data_file(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
        document = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise PolicyError(f"{file}: cannot parse: {exc}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise PolicyError(f"{file}: the data document must be a mapping")
    try:
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{file}: data is not JSON-compatible: {exc}") from exc
    return document


def _merge_at(target: dict[str, Any], prefix: list[str], document: dict[str, Any], file: Path) -> None:
    node = target
    for part in prefix:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise PolicyError(f"{file}: data path {'/'.join(prefix)} conflicts with another data file")
        node = child
    for key, value in document.items():
        if key in node:
            raise PolicyError(f"{file}: data key {key!r} is defined twice")
        node[key] = value


def _input_json(input: Mapping[str, Any] | None) -> str:
    try:
        return json.dumps({} if input is None else dict(input), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"the policy input is not JSON-encodable: {exc}") from exc


def _data_query(path: str) -> str:
    """`a/b/c` -> `data.a.b.c`; PolicyError unless every segment is a plain identifier."""
    parts = [p for p in path.strip("/").split("/") if p]
    for part in parts:
        if not _IDENTIFIER.match(part):
            raise PolicyError(f"invalid data path segment {part!r}")
    return ".".join(["data", *parts])


@runtime_checkable
class PolicyEngine(Protocol):
    """What the gateway needs from a policy engine."""

    @property
    def revision(self) -> str: ...

    def decide(self, input: Mapping[str, Any]) -> Decision: ...

    def data(self) -> Mapping[str, Any]: ...

    def reload(self) -> None: ...


class _Compiled:
    """A bundle compiled by rego-cpp: an interpreter with every module plus a prebuilt entrypoint."""

    def __init__(self, bundle: Bundle) -> None:
        import regopy

        self.bundle = bundle
        self.data_view: Mapping[str, Any] = MappingProxyType(bundle.data)
        self.interpreter = _new_interpreter(bundle)
        try:
            self.plan = self.interpreter.build(None, [DECISION_ENTRYPOINT])
        except regopy.RegoError as exc:
            raise PolicyError(
                f"policy bundle {bundle.root} does not compile: {_error_text(str(exc), bundle.modules)}"
            ) from exc
        # A separate interpreter runs the prebuilt plan; the first one answers ad-hoc queries.
        self.runner = regopy.Interpreter()
        self._check_decision_defined()

    def _check_decision_defined(self) -> None:
        """Evaluate the plan once with an empty input: it must give a valid decision document."""
        import regopy

        try:
            self.runner.set_input_term("{}")
            output = _query_entrypoint(self.runner, self.plan, DECISION_ENTRYPOINT)
            defined, value = _single_value(output, DECISION_ENTRYPOINT)
        except (regopy.RegoError, ValueError) as exc:
            raise PolicyError(f"policy bundle {self.bundle.root} fails to evaluate: {exc}") from exc
        if not defined:
            raise PolicyError(f"policy bundle {self.bundle.root}: {DECISION_ENTRYPOINT} is undefined")
        Decision.from_document(value, self.bundle.revision)


def _new_interpreter(bundle: Bundle, extra: Mapping[str, str] | None = None) -> Any:
    import regopy

    interpreter = regopy.Interpreter()
    try:
        interpreter.add_data_json(json.dumps(bundle.data))
        for name, source in bundle.modules.items():
            interpreter.add_module(name, source)
        for name, source in (extra or {}).items():
            interpreter.add_module(name, source)
    except regopy.RegoError as exc:
        sources = {**bundle.modules, **(extra or {})}
        raise PolicyError(f"policy bundle {bundle.root} does not compile: {_error_text(str(exc), sources)}") from exc
    return interpreter


def _query(interpreter: Any, query: str) -> Any:
    """`interpreter.query(query)`, but a failed query raises instead of crashing.

    regopy 1.5.2 checks the C API's NULL output against 0 instead of None, wraps it in an
    Output, and segfaults when that is read: check the pointer here.
    """
    import regopy
    from regopy.output import Output
    from regopy.rego_shared import rego_get_error, rego_query

    impl = rego_query(interpreter._impl, query)
    if not impl:
        raise regopy.RegoError(_error_text(rego_get_error(interpreter._impl)))
    return Output(impl)


def _query_entrypoint(runner: Any, plan: Any, entrypoint: str) -> Any:
    """`runner.query_bundle_entrypoint(plan, entrypoint)` with the same NULL check as `_query`."""
    import regopy
    from regopy.output import Output
    from regopy.rego_shared import rego_bundle_query_entrypoint, rego_get_error

    impl = rego_bundle_query_entrypoint(runner._impl, plan._impl, entrypoint)
    if not impl:
        raise regopy.RegoError(_error_text(rego_get_error(runner._impl)))
    return Output(impl)


_ERROR_MESSAGE = re.compile(r"\(errormsg \d+:([^)]*)\)")
_ERROR_PLACE = re.compile(r"\(error \d+:([^|\s]*)\|(\d+)\|")


def _error_text(raw: str, sources: Mapping[str, str] | None = None) -> str:
    """rego-cpp errors are AST dumps; keep the messages with `file:line` where the file is known.

    The dump gives each error's file and byte offset; `sources` (file name -> text) turns the
    offset into a line number.
    """
    messages = _ERROR_MESSAGE.findall(raw)
    if not messages:
        return raw.strip()[:500]
    places = _ERROR_PLACE.findall(raw)
    out: list[str] = []
    for i, message in enumerate(messages):
        if i >= len(places) or not places[i][0]:
            out.append(message)
            continue
        name, offset = places[i]
        source = (sources or {}).get(name)
        if source is not None and int(offset) <= len(source.encode("utf-8")):
            line = source.encode("utf-8")[: int(offset)].count(b"\n") + 1
            out.append(f"{name}:{line}: {message}")
        else:
            out.append(f"{name}: {message}")
    return "; ".join(dict.fromkeys(out))


def _single_value(output: Any, what: str) -> tuple[bool, Any]:
    """(defined, value) from a regopy Output; PolicyError on an evaluation error."""
    if not output.ok():
        raise PolicyError(f"evaluation of {what} failed: {output}")
    text = str(output)
    if text == "undefined" or len(output) == 0:
        return False, None
    expressions = output[0].expressions
    if len(output) != 1 or len(expressions) != 1:
        raise PolicyError(f"evaluation of {what} gave several results: {text}")
    return True, expressions[0]


class RegoEngine:
    """In-process engine on regopy (rego-cpp). Thread-safe: one lock around the interpreter."""

    def __init__(self, bundle_dir: Path) -> None:
        self._bundle_dir = Path(bundle_dir)
        self._lock = threading.Lock()
        self._compiled = _Compiled(load_bundle(self._bundle_dir))

    @property
    def revision(self) -> str:
        return self._compiled.bundle.revision

    @property
    def bundle(self) -> Bundle:
        return self._compiled.bundle

    def data(self) -> Mapping[str, Any]:
        return self._compiled.data_view

    @property
    def bundle_dir(self) -> Path:
        return self._bundle_dir

    def reload(self) -> None:
        with bundle_lock(self._bundle_dir, shared=True):
            bundle = load_bundle(self._bundle_dir)
        compiled = _Compiled(bundle)  # raises before anything is replaced
        with self._lock:
            self._compiled = compiled

    def decide(self, input: Mapping[str, Any]) -> Decision:
        document, revision = self._evaluate_decision(_input_json(input))
        return Decision.from_document(document, revision)

    def _evaluate_decision(self, input_json: str) -> tuple[Any, str]:
        import regopy

        with self._lock:
            compiled = self._compiled
            try:
                compiled.runner.set_input_term(input_json)
                output = _query_entrypoint(compiled.runner, compiled.plan, DECISION_ENTRYPOINT)
                defined, value = _single_value(output, DECISION_ENTRYPOINT)
            except (regopy.RegoError, ValueError) as exc:  # ValueError: unparsable output
                raise PolicyError(f"evaluation of {DECISION_ENTRYPOINT} failed: {exc}") from exc
        if not defined:
            raise PolicyError(f"{DECISION_ENTRYPOINT} is undefined")
        return value, compiled.bundle.revision

    def evaluate(self, path: str, input: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Evaluate `data.<path>` like OPA's `POST /v1/data/<path>`: `{"result": v}` or `{}`."""
        query = _data_query(path)
        input_json = _input_json(input)
        if query == "data." + DECISION_ENTRYPOINT.replace("/", "."):
            value, _ = self._evaluate_decision(input_json)
            return {"result": value}
        import regopy

        with self._lock:
            interpreter = self._compiled.interpreter
            try:
                interpreter.set_input_term(input_json)
                defined, value = _single_value(_query(interpreter, query), query)
            except (regopy.RegoError, ValueError) as exc:  # ValueError: unparsable output
                raise PolicyError(f"evaluation of {query} failed: {exc}") from exc
        return {"result": value} if defined else {}

    def run_tests(self) -> TestReport:
        """Run every rule named `test_*` in the bundle's `*_test.rego` files (like `opa test`).

        Each test rule is compiled on its own (the bundle's modules plus its test file, the rule
        as the only entrypoint), then run from that plan: rego-cpp 1.5 crashed when one
        interpreter held every test module, ad-hoc queries recompile (~1 s each), and one plan
        with a whole file's tests as entrypoints grew past 20 GB once decision.rego gained the
        template waiver; a plan per rule stays small and is freed before the next.
        """
        bundle = self._compiled.bundle
        report = TestReport()
        for name, source in sorted(bundle.tests.items()):
            match = _PACKAGE_LINE.search(source)
            if match is None:  # load_bundle refuses such files already
                raise PolicyError(f"{name}: no package declaration")
            package = match.group(1)
            for rule in dict.fromkeys(_TEST_RULE.findall(source)):
                self._run_test_rules(report, name, source, package, [rule])
        return report

    def _run_test_rules(self, report: TestReport, name: str, source: str, package: str, rules: list[str]) -> None:
        import regopy

        bundle = self._compiled.bundle
        entrypoints = {rule: f"{package.replace('.', '/')}/{rule}" for rule in rules}
        try:
            interpreter = _new_interpreter(bundle, extra={name: source})
            plan = interpreter.build(None, list(entrypoints.values()))
        except (PolicyError, regopy.RegoError) as exc:
            for rule in rules:
                report.failed.append(f"{package}.{rule}")
                report.errors[f"{package}.{rule}"] = (
                    str(exc) if isinstance(exc, PolicyError) else _error_text(str(exc), {name: source})
                )
            return
        runner = regopy.Interpreter()
        for rule in rules:
            test_id = f"{package}.{rule}"
            try:
                output = _query_entrypoint(runner, plan, entrypoints[rule])
                defined, value = _single_value(output, test_id)
            except (PolicyError, regopy.RegoError, ValueError) as exc:
                report.failed.append(test_id)
                report.errors[test_id] = str(exc)
                continue
            if defined and value is True:
                report.passed.append(test_id)
            else:
                report.failed.append(test_id)
                report.errors[test_id] = "undefined" if not defined else f"evaluated to {value!r}"


class OpaServerEngine:
    """A real OPA server over its REST API. `data()` comes from the local copy of the bundle.

    opa-python-client keeps one `requests` session (HTTP keep-alive; urllib3 sets TCP_NODELAY on
    its sockets). Retries are off: a failed call raises PolicyError at once and the gateway fails
    closed. The decision carries the server's bundle revision when OPA reports one (provenance)
    and OPA's own decision id when decision logging gives one.
    """

    def __init__(self, url: str, bundle_dir: Path, timeout_s: float = 2.0) -> None:
        from opa_client import OpaClient

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PolicyError(f"OPA URL {url!r} must be http(s)://host[:port]")
        if parts.path not in ("", "/"):
            raise PolicyError(f"OPA URL {url!r} must not have a path")
        port = parts.port or (443 if parts.scheme == "https" else 8181)
        self._url = url
        self._bundle_dir = Path(bundle_dir)
        self._bundle = load_bundle(self._bundle_dir)
        self._client = OpaClient(
            host=parts.hostname, port=port, ssl=parts.scheme == "https", retries=0, timeout=timeout_s
        )

    @property
    def revision(self) -> str:
        return self._bundle.revision

    def data(self) -> Mapping[str, Any]:
        return MappingProxyType(self._bundle.data)

    @property
    def bundle_dir(self) -> Path:
        return self._bundle_dir

    def reload(self) -> None:
        with bundle_lock(self._bundle_dir, shared=True):
            self._bundle = load_bundle(self._bundle_dir)

    def close(self) -> None:
        self._client.close_connection()

    def decide(self, input: Mapping[str, Any]) -> Decision:
        import requests

        payload = json.loads(_input_json(input))
        try:
            response = self._client.query_rule(
                input_data=payload,
                package_path=DECISION_PACKAGE,
                rule_name=DECISION_RULE,
                query_params={"provenance": "true"},
            )
        except requests.RequestException as exc:
            raise PolicyError(f"OPA server {self._url} failed: {exc}") from exc
        except Exception as exc:  # opa_client's own errors, malformed JSON bodies
            raise PolicyError(f"OPA server {self._url} failed: {exc}") from exc
        if not isinstance(response, dict) or "result" not in response:
            raise PolicyError(f"{DECISION_ENTRYPOINT} is undefined on the OPA server {self._url}")
        decision_id = response.get("decision_id")
        return Decision.from_document(
            response["result"],
            revision=self._server_revision(response) or self._bundle.revision,
            decision_id=decision_id if isinstance(decision_id, str) and decision_id else None,
        )

    @staticmethod
    def _server_revision(response: Mapping[str, Any]) -> str | None:
        provenance = response.get("provenance")
        if not isinstance(provenance, Mapping):
            return None
        bundles = provenance.get("bundles")
        if not isinstance(bundles, Mapping) or len(bundles) != 1:
            return None
        (info,) = bundles.values()
        revision = info.get("revision") if isinstance(info, Mapping) else None
        return revision if isinstance(revision, str) and revision else None


LOCK_FILE = ".mamori.lock"
RELOAD_MARKER = ".reload"
_log = logging.getLogger("mamori.policy")


@contextlib.contextmanager
def bundle_lock(bundle_dir: Path, *, shared: bool) -> Iterator[None]:
    """An advisory lock on the bundle folder (`.mamori.lock`, flock), across processes.

    Writers of policy data take it exclusively while they replace `data.yaml` and `.manifest`;
    readers (reload, the file watch) take it shared, so nobody loads half a change. A read-only
    bundle folder (no lock file can be made) is read without a lock: nobody can write it either;
    nor is a folder no writer has locked yet (readers do not create the file).
    """
    path = Path(bundle_dir) / LOCK_FILE
    try:
        # Readers never create the lock file (a bundle nobody writes stays untouched).
        handle = open(path, "rb" if shared else "a+b")  # noqa: SIM115 - closed below
    except OSError:
        if not shared:
            raise PolicyError(f"policy bundle {bundle_dir} is not writable") from None
        yield
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def bundle_fingerprint(bundle_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """What the file watch compares: name, size and mtime of every file that makes the bundle,
    plus the reload marker that `mamori policy reload` touches."""
    root = Path(bundle_dir)
    entries: list[tuple[str, int, int]] = []
    for file in sorted(root.rglob("*")):
        if not file.is_file():
            continue
        if not (file.suffix == ".rego" or file.name in (*_DATA_FILES, ".manifest", RELOAD_MARKER)):
            continue
        try:
            stat = file.stat()
        except OSError:
            continue
        entries.append((file.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def start_policy_watch(services: Any, interval_s: float = 1.0) -> Callable[[], None]:
    """Watch the bundle folder of `services.policy` and reload it when a file changes.

    A polling thread (no extra dependency; works on every file system and for changes made by
    other processes, e.g. another gateway's data API or `mamori policy reload`). A change is
    applied once the folder has been stable for one interval; a bundle that does not load or
    compile is rejected and the old one stays in force. Each outcome is an audit event
    (`policy.reload` with `"by": "watch"`, or `policy.reload_rejected`). Returns a function that
    stops the thread. Engines without a bundle folder are not watched.
    """
    bundle_dir = getattr(services.policy, "bundle_dir", None)
    stop = threading.Event()
    if bundle_dir is None:
        return stop.set

    def audit(event: str, payload: dict[str, Any]) -> None:
        store = getattr(services, "audit", None)
        if store is None:
            return
        try:
            store.append(event, payload)
        except Exception:  # the audit store logs its own failures; the watch must go on
            _log.exception("policy watch: audit append failed")

    def run() -> None:
        seen = bundle_fingerprint(bundle_dir)
        pending: tuple[tuple[str, int, int], ...] | None = None
        while not stop.wait(interval_s):
            current = bundle_fingerprint(bundle_dir)
            if current == seen:
                pending = None
                continue
            if current != pending:  # changed since the last look: wait until it settles
                pending = current
                continue
            seen, pending = current, None
            before = services.policy.revision
            try:
                services.policy.reload()
            except PolicyError as exc:
                _log.warning("policy watch: bundle rejected, the old one stays: %s", exc)
                audit("policy.reload_rejected", {"by": "watch", "revision": before, "error": str(exc)[:2000]})
                continue
            after = services.policy.revision
            _log.info("policy watch: reloaded %s -> %s", before, after)
            audit("policy.reload", {"by": "watch", "revision_before": before, "revision_after": after})

    thread = threading.Thread(target=run, name="mamori-policy-watch", daemon=True)
    thread.start()

    def stop_watch() -> None:
        stop.set()
        thread.join(timeout=interval_s * 2 + 1)

    return stop_watch


def create_engine(kind: Literal["embedded", "opa"], bundle_dir: Path, opa_url: str | None = None) -> PolicyEngine:
    """The engine named by configuration: "embedded" (regopy) or "opa" (an OPA server at opa_url)."""
    if kind == "embedded":
        return RegoEngine(bundle_dir)
    if kind == "opa":
        if not opa_url:
            raise PolicyError("the OPA engine needs an OPA server URL")
        return OpaServerEngine(opa_url, bundle_dir)
    raise PolicyError(f"unknown policy engine kind {kind!r}")


__all__ = [
    "ACTIONS",
    "DECISION_ENTRYPOINT",
    "Action",
    "Bundle",
    "Decision",
    "OpaServerEngine",
    "PolicyEngine",
    "PolicyError",
    "Reason",
    "RegoEngine",
    "TestReport",
    "bundle_fingerprint",
    "bundle_lock",
    "create_engine",
    "default_bundle_dir",
    "load_bundle",
    "start_policy_watch",
]
