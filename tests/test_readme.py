"""The README's and docs' examples are real: every scenario shown there loads, the
control-surface table names every /_sim route, and a new user following the README from
the top (install, serve, a first payment) gets what it says at every step."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from citcon_sim.scenarios import parse_scenario

from .install_support import BANNER, background, clean_env, copy_source, fresh_venv, run

ROOT = Path(__file__).parent.parent
BLOCKS = [
    pytest.param(block, id=f"{doc.name}#{i}")
    for doc in (ROOT / "README.md", ROOT / "docs" / "scenarios.md")
    for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S))
    if "rules:" in block
]


def test_docs_show_scenarios():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS)
def test_scenario_example_loads(block: str) -> None:
    scenario = parse_scenario(block, "example")
    assert scenario.rules and all(r.payment or r.ipn or r.api or r.refund
                                  for r in scenario.rules)


# -- the control-surface table ---------------------------------------------------------------


def control_table(readme: str) -> str:
    start = readme.index("Control surface for tests, QA and demos")
    rows = []
    for line in readme[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|"):
            rows.append(line)
    return "\n".join(rows)


def test_the_control_surface_table_names_every_sim_route() -> None:
    """Every path under ``/_sim`` that the server documents has a row (up to its first path
    parameter), except the snapshot routes (README "Persistence and fixtures") and the
    dashboard page's own calls (``/_sim/dashboard/...``)."""
    from citcon_sim.web.openapi import document

    table = control_table((ROOT / "README.md").read_text(encoding="utf-8"))
    stems = {path.split("{")[0] for path in document("http://127.0.0.1:8080")["paths"]
             if path.startswith("/_sim") and path != "/_sim/state"
             and not path.startswith("/_sim/dashboard/")}
    assert {"/_sim/requests", "/_sim/scenarios", "/_sim/health"} <= stems
    missing = sorted(stem for stem in stems if f"{stem.rstrip('/')}" not in table)
    assert not missing, f"not in the README's control-surface table: {missing}"


# -- following the README from the top: set-up and a first payment -------------------------
#
# The commands are read from the README's ```sh blocks under the headings below, so the
# test follows whatever the README says. Each command runs in bash, in a copy of the
# checkout, with a fresh virtual environment first on the PATH (so `pip` and `citcon-sim`
# are the new user's). The server gets a free port through CITCON_SIM_PORT; commands that
# name the default address get the real one. A `# → output` line under a command is what
# it must print: `…` stands for anything, and the README's sample transaction id
# (`U0000600001-…`) for the id an earlier step printed.

RUN_IT, RUN_TESTS, FIRST_PAYMENT = "Run it", "Run the tests", "A first payment"
DEFAULT_BASE = "http://127.0.0.1:8080"
SAMPLE_ID = re.compile(r"U\d{10}-…")
TXN_ID = r"U\d{10}-[0-9a-f]{20}"


@dataclass
class Step:
    command: str
    expect: str | None = None  # what a `# → ...` line under it says it prints


def section(readme: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match[1]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```(?:sh|bash|shell)\n(.*?)^```", text, re.M | re.S)


def steps(block: str) -> list[Step]:
    """Commands (continuation lines joined) with the output each is said to print."""
    out: list[Step] = []
    pending = ""
    for line in block.splitlines():
        stripped = line.strip()
        if pending:
            pending += "\n" + line
        elif stripped.startswith("#"):
            said = re.match(r"#\s*(?:→|->)\s*(.*)", stripped)
            if said and out:
                # Text after two spaces is a remark about the output, not the output.
                out[-1].expect = re.split(r"\s{2,}", said[1])[0]
            continue
        elif stripped:
            pending = line
        if pending and not pending.endswith("\\"):
            out.append(Step(pending))
            pending = ""
    assert not pending, f"a command ends with a line continuation: {pending!r}"
    return out


def readme_steps(heading: str) -> list[Step]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return [s for block in shell_blocks(section(readme, heading)) for s in steps(block)]


def test_the_readme_has_exactly_two_set_up_commands_and_ci_runs_the_test_one() -> None:
    [run_it] = readme_steps(RUN_IT)
    [run_tests] = readme_steps(RUN_TESTS)
    assert "citcon-sim serve" in run_it.command and "\n" not in run_it.command
    assert "pytest" in run_tests.command and "\n" not in run_tests.command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert run_tests.command in ci.splitlines(), "CI must run the README's test command"


def test_step_parser_reads_continuations_expectations_and_remarks() -> None:
    block = ("curl -s -X POST 'http://127.0.0.1:8080/a' \\\n  --data-urlencode 'x=1'\n"
             "# → http://127.0.0.1:8080/q?q=U0000600001-…   (a remark)\n\n"
             "curl -s http://127.0.0.1:8080/b   # a comment bash ignores\n")
    first, second = steps(block)
    assert first.command.endswith("--data-urlencode 'x=1'") and "\\\n" in first.command
    assert first.expect == "http://127.0.0.1:8080/q?q=U0000600001-…"
    assert second == Step("curl -s http://127.0.0.1:8080/b   # a comment bash ignores")


def expected_pattern(expect: str, base: str, ids: list[str]) -> re.Pattern[str]:
    """``…`` matches anything; the sample id matches (and captures) a real id, or is the
    id found before."""
    out, rest = "", expect.replace(DEFAULT_BASE, base)
    for piece in re.split(r"(U\d{10}-…|…)", rest):
        if SAMPLE_ID.fullmatch(piece):
            out += re.escape(ids[0]) if ids else f"(?P<id>{TXN_ID})"
        elif piece == "…":
            out += ".*?"
        else:
            out += re.escape(piece)
    return re.compile(out)


def run_step(step: Step, *, base: str, ids: list[str], cwd: Path,
             env: dict[str, str]) -> str:
    command = step.command.replace(DEFAULT_BASE, base)
    if SAMPLE_ID.search(command):
        assert ids, f"{step.command!r} needs a transaction id no earlier step printed"
        command = SAMPLE_ID.sub(ids[0], command)
    result = run(["bash", "-c", command], cwd=cwd, env=env, timeout=60)
    output = result.stdout.strip()
    if output.startswith("{"):  # an error envelope is not "works"
        assert json.loads(output).get("result") != "fail", (command, output)
    if step.expect is not None:
        match = expected_pattern(step.expect, base, ids).fullmatch(output)
        assert match, f"{command}\nprinted {output!r}\nREADME says {step.expect!r}"
        if "id" in match.groupdict():
            ids.append(match["id"])
    return output


@pytest.mark.slow
def test_following_the_readme_in_a_fresh_venv(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the README's examples use curl, which is not installed")
    [run_it] = readme_steps(RUN_IT)
    payment = readme_steps(FIRST_PAYMENT)
    assert payment and any(s.expect for s in payment)
    checkout = copy_source(tmp_path / "checkout")
    bin_dir = fresh_venv(tmp_path / "venv")
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    with background(["bash", "-c", run_it.command], cwd=checkout,
                    env={**env, "CITCON_SIM_PORT": "0"}) as server:
        base = server.wait_for(BANNER, timeout=600)[1]
        # "It prints the base URL and a curl example to paste": paste it.
        server.wait_for(re.compile(r"try it:"), timeout=30)
        example = [server.lines.get(timeout=30)]
        while example[-1].rstrip().endswith("\\"):  # up to its last continued line
            example.append(server.lines.get(timeout=30))
        pasted = run(["bash", "-c", "".join(example)], cwd=tmp_path, env=env).stdout
        assert re.fullmatch(rf"{re.escape(base)}/payment/qr\?q={TXN_ID}\s*", pasted), pasted
        ids: list[str] = []
        # A command that finds the server by its settings (not a URL) finds this one.
        step_env = {**env, "CITCON_SIM_PORT": base.rsplit(":", 1)[1], "CITCON_SIM_URL": base}
        for step in payment:
            run_step(step, base=base, ids=ids, cwd=tmp_path, env=step_env)
        assert ids, "no step printed a transaction id"
    assert server.proc.returncode == 0, "".join(server.output)
