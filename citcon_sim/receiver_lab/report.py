"""A receiver lab run's results, and their three renderings: a table for people, JSON and
JUnit XML for CI."""

from __future__ import annotations

import enum
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from citcon_sim.receiver_lab.checks import Check


class Outcome(enum.Enum):
    PASS = "pass"
    FAIL = "FAIL"  # a required check failed: the run fails
    ADVICE = "advice"  # an advisory check was not met: reported, never fails the run
    NOT_JUDGED = "not judged"  # the answers cannot show it (the detail says why)
    NOT_APPLICABLE = "n/a"  # the check does not exist on this face


@dataclass(frozen=True)
class CheckResult:
    check: Check
    outcome: Outcome
    detail: str  # what was seen, and why it was judged so
    status: int | None = None  # the receiver's HTTP status, when something was sent
    body: str = ""  # the start of its answer
    error: str | None = None  # why nothing came back (refused connection, timeout)
    latency_ms: float | None = None
    transaction_id: str | None = None

    def answer(self) -> str:
        """The answer in a few characters: ``200 'ok' 3 ms``, ``timeout after 10 s``."""
        if self.error is not None:
            return self.error.split(":")[0]  # its kind: ClientConnectorError, timeout…
        if self.status is None:
            return ""
        body = self.body.strip()
        shown = repr(body if len(body) <= 12 else body[:11] + "…")
        return f"{self.status} {shown} {self.latency_ms or 0:.0f} ms"

    def as_dict(self) -> dict[str, Any]:
        c = self.check
        return {
            "id": c.id, "title": c.title, "required": c.required,
            "outcome": self.outcome.value.lower(), "detail": self.detail,
            "status": self.status, "body": self.body, "error": self.error,
            "latency_ms": self.latency_ms, "transaction_id": self.transaction_id,
            "sends": c.sends, "why": c.why, "judged": c.judged, "cannot_judge": c.cannot_judge,
        }


@dataclass(frozen=True)
class ReceiverReport:
    """What :func:`~citcon_sim.receiver_lab.run_lab` found; ``ok`` when no required check
    failed (advice, not judged and n/a never fail a run)."""

    url: str
    face: str
    gateway_url: str
    timeout: float
    results: tuple[CheckResult, ...]

    def _with(self, outcome: Outcome) -> list[CheckResult]:
        return [r for r in self.results if r.outcome is outcome]

    @property
    def passed(self) -> list[CheckResult]:
        return self._with(Outcome.PASS)

    @property
    def failed(self) -> list[CheckResult]:
        return self._with(Outcome.FAIL)

    @property
    def advice(self) -> list[CheckResult]:
        return self._with(Outcome.ADVICE)

    @property
    def not_judged(self) -> list[CheckResult]:
        return self._with(Outcome.NOT_JUDGED)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def result(self, check_id: str) -> CheckResult:
        for r in self.results:
            if r.check.id == check_id:
                return r
        raise KeyError(check_id)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` naming every failed check, what it sent and why it
        matters."""
        __tracebackhide__ = True  # pytest: show the test, not this
        if self.failed:
            lines = [f"the IPN receiver at {self.url} failed {len(self.failed)} check(s) "
                     f"({self.face} face):"]
            for r in self.failed:
                lines.append(f"- {r.check.id}: {r.detail}")
                lines.append(f"    sent: {r.check.sends}")
                lines.append(f"    why: {r.check.why}")
            raise AssertionError("\n".join(lines))

    # -- renderings ----------------------------------------------------------------------

    def summary(self) -> str:
        counts = [f"{len(self.passed)} passed", f"{len(self.failed)} failed",
                  f"{len(self.advice)} advice", f"{len(self.not_judged)} not judged",
                  f"{len(self._with(Outcome.NOT_APPLICABLE))} n/a"]
        verdict = "OK" if self.ok else "FAILED: " + ", ".join(r.check.id for r in self.failed)
        return f"{len(self.results)} checks: {', '.join(counts)} -> {verdict}"

    def table(self) -> str:
        head = (f"citcon-sim check-receiver {self.url}  face={self.face}  "
                f"timeout={self.timeout:g}s  gateway={self.gateway_url}")
        rows = [("RESULT", "CHECK", "ANSWER", "DETAIL")]
        rows += [(r.outcome.value, r.check.id, r.answer(), r.detail) for r in self.results]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [head, ""]
        for row in rows:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                         + "  " + row[3])
        return "\n".join([*lines, "", self.summary()])

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url, "face": self.face, "gateway": self.gateway_url,
            "timeout": self.timeout, "ok": self.ok, "exit_status": self.exit_status,
            "summary": self.summary(), "checks": [r.as_dict() for r in self.results],
        }

    def json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def junit_xml(self) -> str:
        """One ``testsuite``, one ``testcase`` per check: a failed check is a
        ``failure``; not judged and n/a are ``skipped``; advice passes with the advice in
        ``system-out``."""
        suite = ET.Element("testsuite", {
            "name": f"citcon-sim check-receiver ({self.face})",
            "tests": str(len(self.results)), "failures": str(len(self.failed)),
            "errors": "0",
            "skipped": str(sum(r.outcome in (Outcome.NOT_JUDGED, Outcome.NOT_APPLICABLE)
                               for r in self.results)),
        })
        props = ET.SubElement(suite, "properties")
        for name, value in (("url", self.url), ("face", self.face),
                            ("gateway", self.gateway_url), ("timeout", f"{self.timeout:g}")):
            ET.SubElement(props, "property", {"name": name, "value": value})
        for r in self.results:
            case = ET.SubElement(suite, "testcase", {
                "classname": f"citcon_sim.receiver_lab.{self.face}", "name": r.check.id,
                "time": f"{(r.latency_ms or 0) / 1000:.3f}",
            })
            if r.outcome is Outcome.FAIL:
                failure = ET.SubElement(case, "failure", {"message": r.detail})
                failure.text = (f"{r.check.title}\nsent: {r.check.sends}\n"
                                f"answer: {r.answer()}\nwhy it matters: {r.check.why}")
            elif r.outcome in (Outcome.NOT_JUDGED, Outcome.NOT_APPLICABLE):
                ET.SubElement(case, "skipped", {"message": r.detail})
            elif r.outcome is Outcome.ADVICE:
                ET.SubElement(case, "system-out").text = f"advice: {r.detail}"
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
