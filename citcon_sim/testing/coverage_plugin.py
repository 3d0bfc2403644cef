"""The pytest side of behaviour coverage (``citcon_sim.testing.coverage``): options,
attributing behaviours to the running test, the report and the threshold.

    pytest --citcon-sim-coverage                        # print the report at the end
    pytest --citcon-sim-coverage-fail-under=80          # and fail the run under 80 %
    pytest --citcon-sim-coverage-json=coverage.json     # and write it as JSON
    pytest --citcon-sim-coverage --citcon-sim-coverage-faces=online,upi
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path

import pytest

from citcon_sim.testing import SimulatorServer
from citcon_sim.testing.coverage import ALL_FACES, Recorder

_BETWEEN = "(between tests)"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("citcon-sim", "citcon-sim behaviour coverage")
    group.addoption("--citcon-sim-coverage", action="store_true",
                    help="report which gateway behaviours the tests made the simulator show")
    group.addoption("--citcon-sim-coverage-fail-under", type=float, metavar="PERCENT",
                    help="fail the run when behaviour coverage is under PERCENT "
                         "(implies --citcon-sim-coverage)")
    group.addoption("--citcon-sim-coverage-json", metavar="PATH",
                    help="write the behaviour coverage report as JSON "
                         "(implies --citcon-sim-coverage)")
    group.addoption("--citcon-sim-coverage-faces", metavar="FACES",
                    help="comma-separated API faces to count (online, chop, upi) "
                         "[default: the faces the tests called] "
                         "(implies --citcon-sim-coverage)")


def configure(config: pytest.Config) -> None:
    """Register the coverage plugin when any of its options is given."""
    fail_under: float | None = config.getoption("citcon_sim_coverage_fail_under")
    json_path: str | None = config.getoption("citcon_sim_coverage_json")
    faces_text: str | None = config.getoption("citcon_sim_coverage_faces")
    if not (config.getoption("citcon_sim_coverage") or fail_under is not None or json_path
            or faces_text):
        return
    faces = None
    if faces_text:
        faces = [f.strip() for f in faces_text.split(",") if f.strip()]
        unknown = [f for f in faces if f not in ALL_FACES]
        if unknown or not faces:
            raise pytest.UsageError(f"--citcon-sim-coverage-faces: unknown face(s) "
                                    f"{', '.join(unknown) or '(none given)'}; "
                                    f"choose from {', '.join(ALL_FACES)}")
    if fail_under is not None and not 0 <= fail_under <= 100:
        raise pytest.UsageError("--citcon-sim-coverage-fail-under: give a percentage 0-100")
    config.pluginmanager.register(
        CoveragePlugin(Recorder(faces), fail_under, json_path), "citcon-sim-coverage")


class CoveragePlugin:
    def __init__(self, recorder: Recorder, fail_under: float | None,
                 json_path: str | None) -> None:
        self.recorder = recorder
        self.fail_under = fail_under
        self.json_path = json_path
        self.under: float | None = None  # the percentage, when it failed the threshold
        SimulatorServer.observers.append(recorder)

    def pytest_unconfigure(self) -> None:
        if self.recorder in SimulatorServer.observers:
            SimulatorServer.observers.remove(self.recorder)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        self.recorder.current = item.nodeid
        try:
            return (yield)
        finally:
            self.recorder.harvest_all()  # the journal, before the next test clears it
            self.recorder.current = _BETWEEN

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.recorder.harvest_all()
        report = self.recorder.report()
        if self.json_path:
            Path(self.json_path).write_text(json.dumps(report.as_json(), indent=2) + "\n")
        if self.fail_under is not None and report.percent < self.fail_under:
            self.under = report.percent
            if exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        report = self.recorder.report()
        terminalreporter.write_sep("-", "citcon-sim behaviour coverage")
        terminalreporter.write_line(report.format())
        if self.json_path:
            terminalreporter.write_line(f"JSON report: {self.json_path}")
        if self.under is not None:
            terminalreporter.write_line(
                f"FAIL: citcon-sim behaviour coverage {self.under:.1f}% is under "
                f"{self.fail_under:g}% (--citcon-sim-coverage-fail-under)", red=True)
