"""Scenario rules: make the gateway decline, expire, stall or mangle IPNs on purpose.

A scenario file (YAML, schema in ``scenario.schema.json``) is a list of rules. For each
merchant API request the first rule that matches decides; the decision is carried as data
to the places that already make those decisions — the HTTP middleware (API behaviour),
the transaction (payment outcome, applied through the ledger's consumer operations) and
the IPN sender (notification behaviour). There is no second code path.

Magic amounts are a shipped scenario (``magic.yaml``) tried after all loaded rules when
``Config.magic_amounts`` is on (off by default: real prices end in 9905 too).

The package's own files (the shipped scenarios, the schema) are read once, when the
simulator starts (:func:`load_packaged_data`), never on a request: a ``pip install`` that
replaces the installed files under a running server cannot break it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from citcon_sim.domain.commands import MAX_REFERENCE_LENGTH, is_wire_safe
from citcon_sim.domain.endpoints import ENDPOINTS_BY_FACE, SCRIPTABLE, scriptable
from citcon_sim.domain.errors import CitconError
from citcon_sim.domain.events import EventBus, ScenarioLoaded, ScenariosCleared
from citcon_sim.domain.money import normalise_currency
from citcon_sim.domain.redaction import token_hint
from citcon_sim.domain.scripts import (
    SCRIPT_BOUNDS,
    ApiScript,
    IpnScript,
    PaymentScript,
    RefundScript,
    RequestFacts,
    Rule,
)
from citcon_sim.domain.vendors import GENERIC_VENDOR, VENDORS

if TYPE_CHECKING:
    import yaml  # imported where used, not at start-up

ENDPOINTS = SCRIPTABLE  # the ``endpoint`` match key's values (domain.endpoints)
FACES = tuple(ENDPOINTS_BY_FACE)  # the ``face`` match key's values


class ScenarioError(ValueError):
    """An unusable scenario; the message names the source, the line and the problem.

    ``errors``: every problem found in the scenario (this one first), one per line of
    the message; ``source``, ``line`` and ``problem`` are the first's."""

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        self.source, self.line, self.problem = source, line, problem
        self.errors: list[ScenarioError] = [self]
        super().__init__(self.where() + ": " + problem)

    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    @classmethod
    def of(cls, errors: list[ScenarioError]) -> ScenarioError:
        """One error standing for ``errors`` (at least one), in the file's order."""
        ordered = sorted(errors, key=lambda e: e.line or 0)
        first = ordered[0]
        found = cls(first.source, first.line, first.problem)
        found.errors = ordered
        found.args = ("\n".join(str(e) for e in ordered),)
        return found


class Scenario(msgspec.Struct):
    """A named list of rules, tried in order.

    ``anonymous``: YAML text with no ``name:`` (named after its ``source``); loading it
    adds it, where loading a named scenario replaces the one of that name."""

    name: str
    source: str
    rules: list[Rule] = msgspec.field(default_factory=list)
    description: str = ""
    anonymous: bool = False

    def fresh(self) -> Scenario:
        """This scenario with its rules' counters (``nth``, ``times``) at zero."""
        return msgspec.structs.replace(self, rules=[
            msgspec.structs.replace(r, seen=0, applied=0) for r in self.rules])

    def rules_for(self, endpoint: str) -> tuple[Rule, ...]:
        """The rules whose ``endpoint`` key allows ``endpoint``, in order (any other rule
        fails its keys for such a request before it counts it)."""
        return tuple(r for r in self.rules if r.endpoints is None or endpoint in r.endpoints)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "rules": [r.describe() for r in self.rules],
        }


# -- the package's own files, read at start ----------------------------------------------


class PackagedData(msgspec.Struct, frozen=True):
    """The scenario files shipped inside the package, as text."""

    schema: str  # scenario.schema.json
    shipped: dict[str, str]  # shipped_scenarios/<name>.yaml by name, sorted


@cache
def load_packaged_data() -> PackagedData:
    """Read the package's scenario files; once per process. ``Simulator`` calls it as it
    starts, so that no request ever reads them (a reinstall may have removed them)."""
    package = resources.files("citcon_sim")
    folder = package.joinpath("shipped_scenarios")
    return PackagedData(
        schema=package.joinpath("scenario.schema.json").read_text("utf-8"),
        shipped={
            entry.name.removesuffix(".yaml"): entry.read_text("utf-8")
            for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".yaml")
        },
    )


def schema_text() -> str:
    """``scenario.schema.json`` as shipped (the OpenAPI document embeds it)."""
    return load_packaged_data().schema


# -- loading --------------------------------------------------------------------------


@cache
def schema() -> dict[str, Any]:
    data = dict(json.loads(schema_text()))
    for (section, key), (low, high) in SCRIPT_BOUNDS.items():  # the one set of bounds
        data["$defs"][section]["properties"][key].update(minimum=low, maximum=high)
    return data


@cache
def _validator() -> Any:
    """The schema's validator, loaded when a scenario is first validated, not at
    start-up: the shipped magic amounts are not validated at run time (the tests
    validate them)."""
    import jsonschema

    # JSON Schema counts 1.0 as an integer; the rules use integers as ints (nth, times).
    extend: Any = jsonschema.validators.extend  # untyped in some jsonschema stubs
    cls = extend(
        jsonschema.Draft202012Validator,
        type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
            "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)),
    )
    return cls(schema())


def _node_at(root: yaml.Node | None, path: list[str | int]) -> yaml.Node | None:
    """The YAML node at a JSON path, for error line numbers."""
    import yaml

    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            return node
        if node is None:
            return None
    return node


def _key_line(root: yaml.Node | None, path: list[str | int], key: str) -> int | None:
    """The line of ``key`` in the mapping at ``path`` (an unexpected key is reported there)."""
    import yaml

    node = _node_at(root, path)
    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if k.value == key:
                return int(k.start_mark.line) + 1
    return None


def _line(root: yaml.Node | None, path: list[str | int]) -> int | None:
    # Walk up until a node exists (a missing key is reported at its parent).
    for cut in range(len(path), -1, -1):
        node = _node_at(root, path[:cut])
        if node is not None:
            return node.start_mark.line + 1
    return None


# Nodes once YAML aliases are expanded: far above any real scenario, far below an alias
# "billion laughs" (a few hundred bytes that expand to 10^9 nodes and stall validation).
MAX_EXPANDED_NODES = 100_000


def _expanded_size(root: yaml.Node | None, limit: int) -> int:
    """How many nodes ``root`` stands for with aliases expanded; stops above ``limit``.

    Linear in the distinct nodes (an aliased node is sized once); a recursive alias counts
    as too large."""
    import yaml

    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)] if root is not None else []
    while stack:
        node, done = stack.pop()
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if done:
            visiting.discard(id(node))
            sizes[id(node)] = size = 1 + sum(sizes[id(c)] for c in children)
            if size > limit:
                return size
            continue
        if id(node) in sizes:
            continue
        if id(node) in visiting:
            return limit + 1  # an alias to one of its own ancestors
        visiting.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes.get(id(root), 0)


def parse_scenario(text: str, source: str = "<scenario>", *, trusted: bool = False,
                   default_name: str | None = None) -> Scenario:
    """A scenario from YAML text, checked against the schema. ``trusted``: text shipped
    in the package and validated by the tests (the magic amounts): libyaml's loader when
    present and no schema validation. ``default_name`` names it when the text does not
    (a file's stem); with neither, it is anonymous and named after ``source``."""
    import yaml

    fast = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = fast if trusted else yaml.SafeLoader
    try:
        root = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark else None
        raise ScenarioError(source, line, f"not valid YAML: {problem}") from None
    except RecursionError:
        raise ScenarioError(source, None, "nested too deeply") from None
    except ValueError as exc:  # a value YAML resolves but Python refuses: 2024-13-45, 10**5000
        raise ScenarioError(source, None, f"not valid YAML: {exc}") from None
    if data is None:
        raise ScenarioError(source, None, "empty scenario")
    if _expanded_size(root, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
        raise ScenarioError(source, None, f"more than {MAX_EXPANDED_NODES} values once YAML "
                            "aliases are expanded (or an alias that contains itself)")
    if not trusted:
        errors = [*_schema_errors(root, data, source), *_catalogue_errors(root, data, source)]
        if not is_wire_safe(data):  # YAML's .nan/.inf, "\ud800": /_sim/scenarios could not show it
            errors.append(ScenarioError(source, None,
                                        "a value is NaN, infinite or not valid Unicode"))
        if errors:
            raise ScenarioError.of(errors)
    name = str(data.get("name") or default_name or "")
    scenario = Scenario(name or source, source, anonymous=not name,
                        description=str(data.get("description") or ""))
    for i, raw in enumerate(data["rules"]):
        line = _line(root, ["rules", i])
        scenario.rules.append(_build_rule(raw, source, line, f"{scenario.name}#{i + 1}"))
    return scenario


def _schema_errors(root: yaml.Node | None, data: Any, source: str) -> list[ScenarioError]:
    """Every place the scenario breaks the schema, each named by its path and line."""
    import jsonschema

    try:
        found = list(_validator().iter_errors(data))
    except RecursionError:
        raise ScenarioError(source, None, "nested too deeply") from None
    errors = []
    # A rule whose action is misspelt ("paymnet") lacks an action too: say the cause only.
    misspelt = {tuple(e.absolute_path) for e in found if e.validator == "additionalProperties"}
    for top in found:
        error = jsonschema.exceptions.best_match([top])  # the telling one of a oneOf/anyOf
        path = list(error.absolute_path)
        where = "/".join(str(p) for p in path) or "top level"
        message = error.message
        if error.validator == "anyOf" and path[:1] == ["rules"]:
            if tuple(path) in misspelt:
                continue
            message = "a rule needs at least one action: payment, ipn, api or refund"
        line = _line(root, path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            unexpected = [k for k in error.instance if k not in known]
            if unexpected:
                line = _key_line(root, path, str(unexpected[0])) or line
        errors.append(ScenarioError(source, line, f"{where}: {message}"))
    return errors


def _catalogue_errors(root: yaml.Node | None, data: Any, source: str) -> list[ScenarioError]:
    """What the schema cannot know: vendors and currencies the simulator does not have,
    endpoints the rule's faces do not have (such a rule could never match), reference
    patterns that are not usable, actions that need another."""
    rules = data.get("rules") if isinstance(data, dict) else None
    errors: list[ScenarioError] = []

    def error(path: list[str | int], problem: str) -> None:
        where = "/".join(str(p) for p in path)
        errors.append(ScenarioError(source, _line(root, path), f"{where}: {problem}"))

    for i, rule in enumerate(rules if isinstance(rules, list) else ()):
        if not isinstance(rule, dict):
            continue
        ipn, payment = rule.get("ipn"), rule.get("payment")
        if isinstance(ipn, dict) and ipn.get("before_answer") is True and not (
                isinstance(payment, dict) and payment.get("outcome") == "pay"
                and not payment.get("after")):
            # Only a payment paid while its create call is being answered has a
            # notification that can beat the answer.
            error(["rules", i, "ipn", "before_answer"], "ipn.before_answer needs payment: "
                  "{outcome: pay} (paid at once, no after)")
        match = rule.get("match")
        if not isinstance(match, dict):
            continue
        at: list[str | int] = ["rules", i, "match"]
        face = match.get("face")
        # Unknown faces (and values that are no names) are the schema's to report: the
        # checks below take the known ones, or every face when none is.
        faces = ({face} if isinstance(face, str) else
                 {f for f in face if isinstance(f, str)} if isinstance(face, list)
                 else set()) & set(FACES) or set(FACES)
        vendors = match.get("vendor")
        for j, code in (enumerate(vendors) if isinstance(vendors, list) else [(None, vendors)]):
            if not isinstance(code, str):
                continue
            path = [*at, "vendor"] + ([j] if j is not None else [])
            vendor = VENDORS.get(code.strip().lower())
            if code.strip().lower() == GENERIC_VENDOR and "online" in faces:
                continue  # what the Online API's requests say, as the rule sees them
            if vendor is None:
                error(path, f"unknown vendor {code!r} (one of: {', '.join(VENDORS)})")
            elif not vendor.faces & faces:
                error(path, f"{code!r} is not accepted by the {'/'.join(sorted(faces))} "
                      f"API (only {', '.join(sorted(vendor.faces))})")
        endpoints = match.get("endpoint")
        if faces != set(FACES):  # every face together has every name the schema takes
            served = {name for f in faces for name in scriptable(f)}
            for j, name in (enumerate(endpoints) if isinstance(endpoints, list)
                            else [(None, endpoints)]):
                if isinstance(name, str) and name in SCRIPTABLE and name not in served:
                    error([*at, "endpoint"] + ([j] if j is not None else []),
                          f"{name!r} is not an endpoint of the {'/'.join(sorted(faces))} "
                          f"API (only {', '.join(sorted(served))})")
        currency = match.get("currency")
        if isinstance(currency, str) and re.fullmatch(r"[A-Za-z]{3}", currency):
            try:
                normalise_currency(currency)
            except CitconError as exc:
                error([*at, "currency"], str(exc.detail))
        reference = match.get("reference")
        if isinstance(reference, dict) and isinstance(reference.get("regex"), str):
            path = [*at, "reference", "regex"]
            try:
                re.compile(reference["regex"])
            except (re.error, RecursionError, OverflowError) as exc:
                errors.append(ScenarioError(source, _line(root, path),
                                            f"bad reference regex: {exc}"))
                continue
            problem = regex_problem(reference["regex"])
            if problem is not None:
                errors.append(ScenarioError(source, _line(root, path),
                                            f"reference regex refused: {problem}"))
    return errors


def load_scenario_file(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), None, f"cannot read: {exc}") from None
    return parse_scenario(text, str(path), default_name=path.stem)


def shipped_scenarios() -> dict[str, str]:
    """Names and texts of the scenarios shipped in the package (``scenarios/`` in the
    repo), as read at start."""
    return dict(load_packaged_data().shipped)


def resolve_scenario(spec: str | os.PathLike[str], *, text: bool = False, files: bool = True,
                     source: str = "<scenario>") -> Scenario:
    """The scenario a user names, by one precedence (the first that applies wins):

    1. an ``os.PathLike``: that file;
    2. with ``text``, a string holding a line break: YAML text;
    3. a string naming an existing file: that file (so ``./declines`` on disk wins);
    4. the name of a shipped scenario (``declines``, ``flaky-ipn``…, see
       :func:`shipped_scenarios`);
    5. a string ending ``.yaml``, ``.yml`` or ``.json``: that file (missing: an error);
    6. with ``text``, any other string: YAML text (``{rules: [...]}`` on one line);
    7. otherwise: that file, which does not exist (the error names it).

    ``text`` allows YAML text, as :meth:`SimulatorServer.load_scenario` and the control
    surface take it; ``source`` names such text in errors. ``files=False`` skips every
    file step, for callers who may not read the server's files (``POST /_sim/scenarios``):
    then a string is a shipped name, else YAML text if allowed, else an error.
    """
    if isinstance(spec, os.PathLike):
        if not files:
            raise ScenarioError(source, None, "a scenario file cannot be read here")
        return load_scenario_file(Path(spec))
    if text and "\n" in spec:
        return parse_scenario(spec, source)
    if files and Path(spec).is_file():
        return load_scenario_file(spec)
    shipped = shipped_scenarios()
    if spec in shipped:
        return parse_scenario(shipped[spec], f"{spec}.yaml", default_name=spec)
    if files and spec.endswith((".yaml", ".yml", ".json")):
        return load_scenario_file(spec)
    if text:
        return parse_scenario(spec, source)
    if files:
        return load_scenario_file(spec)
    raise ScenarioError(spec, None, "not a shipped scenario (one of: "
                        f"{', '.join(shipped)})")


# -- bounding regex work ------------------------------------------------------------------
# Python's re backtracks: a nested quantifier like (a+)+ or an ambiguous alternation like
# (a|a)* takes exponential time on a short non-matching text (2 s on 26 characters), and
# a run of quantifiers like a*a*a*a* polynomial time. Such patterns are refused when the
# scenario loads; with at most MAX_QUANTIFIERS variable quantifiers and a reference of at
# most MAX_REFERENCE_LENGTH characters (the longest any face accepts), a match stays
# within milliseconds.
MAX_QUANTIFIERS = 3


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` could backtrack catastrophically, or None. Conservative: a few
    harmless patterns are refused too (the message says how to write them)."""
    import importlib

    parser: Any = importlib.import_module("re._parser")  # the compiler's own parse tree
    consts: Any = importlib.import_module("re._constants")
    repeats = {consts.MAX_REPEAT, consts.MIN_REPEAT}
    repeats |= {getattr(consts, "POSSESSIVE_REPEAT", consts.MAX_REPEAT)}
    count = 0

    def first_chars(branch: Any) -> set[int] | None:
        """The characters a branch can start with, when plain literals say so."""
        if not len(branch):
            return None
        op, av = branch[0]
        if op is consts.LITERAL:
            return {av}
        if op is consts.IN and all(o is consts.LITERAL for o, _ in av):
            return {v for _, v in av}
        if op is consts.SUBPATTERN:
            return first_chars(av[-1])
        return None

    def walk(sub: Any, repeated: bool) -> str | None:
        nonlocal count
        for op, av in sub:
            found: str | None = None
            if op in repeats:
                low, high, body = av
                if low != high:
                    count += 1
                    if repeated:
                        return ("a quantifier inside a repeated group, like (a+)+ "
                                "(write the group without the inner quantifier)")
                found = walk(body, repeated or high > 1)
            elif op is consts.BRANCH:
                if repeated:
                    seen: set[int] = set()
                    for branch in av[1]:
                        chars = first_chars(branch)
                        if chars is None or chars & seen or branch.getwidth()[0] == 0:
                            return ("alternatives inside a repeated group that can start "
                                    "alike or be empty, like (a|ab)* (make each "
                                    "alternative start with its own character)")
                        seen |= chars
                for branch in av[1]:
                    found = found or walk(branch, repeated)
            elif op is consts.SUBPATTERN:
                found = walk(av[-1], repeated)
            elif op in (consts.ASSERT, consts.ASSERT_NOT):
                found = walk(av[1], repeated)
            elif op is consts.GROUPREF_EXISTS:
                found = walk(av[1], repeated) or (walk(av[2], repeated) if av[2] else None)
            elif op is getattr(consts, "ATOMIC_GROUP", None):
                found = walk(av, repeated)
            if found is not None:
                return found
        return None

    try:
        problem = walk(parser.parse(pattern), False)
    except (re.error, RecursionError, OverflowError) as exc:
        return str(exc)
    if problem is None and count > MAX_QUANTIFIERS:
        problem = (f"{count} variable quantifiers (*, +, ?, {{m,n}}); at most "
                   f"{MAX_QUANTIFIERS}, so that matching stays fast")
    return problem


def _build_rule(raw: dict[str, Any], source: str, line: int | None, default: str) -> Rule:
    match = raw.get("match") or {}
    rule = Rule(name=str(raw.get("name") or default), source=source, line=line,
                times=raw.get("times"))
    rule.token = match.get("token")
    if "face" in match:
        faces = match["face"]
        rule.faces = frozenset([faces] if isinstance(faces, str) else faces)
    if "vendor" in match:
        vendors = match["vendor"]
        rule.vendors = frozenset(v.lower() for v in ([vendors] if isinstance(vendors, str)
                                                     else vendors))
    if "endpoint" in match:
        eps = match["endpoint"]
        rule.endpoints = frozenset([eps] if isinstance(eps, str) else eps)
    amount = match.get("amount")
    if isinstance(amount, int):
        rule.amount = amount
    elif isinstance(amount, dict):
        rule.amount_min, rule.amount_max = amount.get("min"), amount.get("max")
        rule.amount_suffix = amount.get("suffix")
    if "currency" in match:
        rule.currency = match["currency"].upper()
    reference = match.get("reference")
    if isinstance(reference, str):
        # A glob matches the whole reference (translate anchors only the end).
        rule.reference = re.compile(r"\A" + fnmatch.translate(reference))
    elif isinstance(reference, dict):
        rule.reference = re.compile(reference["regex"])  # checked: _catalogue_errors
    if "nth" in match:
        nth = match["nth"]
        rule.nth = frozenset([nth] if isinstance(nth, int) else nth)
    if "payment" in raw:
        rule.payment = PaymentScript(**raw["payment"])
    if "ipn" in raw:
        rule.ipn = IpnScript(**raw["ipn"])
    if "api" in raw:
        rule.api = ApiScript(**raw["api"])
    if "refund" in raw:
        rule.refund = RefundScript(**raw["refund"])
    return rule


# -- the book of loaded scenarios --------------------------------------------------------


def _magic() -> Scenario:
    return parse_scenario(load_packaged_data().shipped["magic"], "magic.yaml", trusted=True,
                          default_name="magic")


class ScenarioBook:
    """Loaded scenarios: per merchant token first, then global, then magic amounts (when
    ``magic`` is on)."""

    def __init__(self, magic: bool = False, events: EventBus | None = None) -> None:
        self.events = events if events is not None else EventBus()  # loaded / cleared
        self.global_scenarios: list[Scenario] = []
        self.by_token: dict[str, list[Scenario]] = {}
        self.magic_enabled = magic
        # Parsed by the first request that needs it, from the text read at start (never
        # from disk): parsing here would import YAML and cost every start-up ~15 ms.
        self._magic_table: Scenario | None = None

    @property
    def _magic(self) -> Scenario:
        """The magic-amount table (parsed here if magic amounts were turned on later)."""
        if self._magic_table is None:
            self._magic_table = _magic()
        return self._magic_table

    def load(self, scenario: Scenario, token: str | None = None) -> bool:
        """Load ``scenario`` for every merchant or one ``token``. A scenario of the same
        name already loaded there is replaced, in its place in the order (reloading a
        changed file must not make it fire twice); an anonymous one is added. Whether it
        replaced one."""
        group = self.global_scenarios if token is None else self.by_token.setdefault(token, [])
        at = next((i for i, s in enumerate(group)
                   if not scenario.anonymous and not s.anonymous and s.name == scenario.name),
                  None)
        if at is None:
            group.append(scenario)
        else:
            group[at] = scenario
        self.events.publish(ScenarioLoaded(scenario.name, token))
        return at is not None

    def clear(self, token: str | None = None) -> None:
        if token is None:
            self.global_scenarios.clear()
            self.by_token.clear()
        else:
            self.by_token.pop(token, None)
        self.events.publish(ScenariosCleared(token))

    def _groups(self, token: str | None) -> list[Scenario]:
        groups = [*self.by_token.get(token or "", ()), *self.global_scenarios]
        if self.magic_enabled:
            groups.append(self._magic)
        return groups

    def could_match(self, endpoint: str, token: str | None) -> bool:
        """Whether any loaded rule could match a request to ``endpoint``: when none can,
        the middleware skips building the facts and deciding (nothing to count either)."""
        if not self.global_scenarios and not self.by_token:  # the usual case: magic only
            return self.magic_enabled and bool(self._magic.rules_for(endpoint))
        return any(scenario.rules_for(endpoint) for scenario in self._groups(token))

    def decide(self, facts: RequestFacts) -> Rule | None:
        """The first rule matching this request, or None (behave normally)."""
        if facts.reference is not None and len(facts.reference) > MAX_REFERENCE_LENGTH:
            # No face accepts it (the call fails with an invalid reference): no reference
            # rule matches it, and no pattern runs over a long text.
            facts = msgspec.structs.replace(facts, reference=None)
        chosen: Rule | None = None
        for scenario in self._groups(facts.token):
            for rule in scenario.rules_for(facts.endpoint):
                if rule.observe(facts) and chosen is None:
                    chosen = rule
        if chosen is not None:
            chosen.applied += 1
        return chosen

    def describe(self, token: str | None = None) -> dict[str, Any]:
        scoped = self.by_token if token is None else {token: self.by_token.get(token, [])}
        return {
            "global": [s.describe() for s in self.global_scenarios],
            "by_token": {
                # Keyed by a hint that differs for every token, never the token itself.
                token_hint(t, unique=True): [s.describe() for s in ss]
                for t, ss in scoped.items()
            },
            "magic_amounts": self._magic.describe() if self.magic_enabled else None,
        }

