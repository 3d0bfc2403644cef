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

from .helpers import threaded_ipn_receiver
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


# -- following the README from the top: set-up, a first payment, the command line -------------
#
# The commands are read from the README's ```sh blocks under the headings below, so the
# test follows whatever the README says. Each command runs in bash, in a copy of the
# checkout, with a fresh virtual environment first on the PATH (so `pip` and `citcon-sim`
# are the new user's). The server gets a free port through CITCON_SIM_PORT; commands that
# name the default address get the real one, and the README's IPN receiver
# (http://127.0.0.1:9000/ipn) is one the test serves on a free port. The `# → output`
# lines under a command are what it must print: `…` stands for anything, a duration
# (`3 ms`) for any duration, and a sample id (a transaction's `U0000600001-…`, a notify
# id's `5c1f…`) for the id an earlier step printed where that sample first appeared.

RUN_IT, RUN_TESTS, FIRST_PAYMENT = "Run it", "Run the tests", "A first payment"
COMMAND_LINE = "Drive it from the command line"
DEFAULT_BASE = "http://127.0.0.1:8080"
README_RECEIVER = "http://127.0.0.1:9000/ipn"
# Sample ids, with the real ids they stand for.
SAMPLES = {r"U\d{10}-…": r"U\d{10}-[0-9a-f]{20}", r"\b[0-9a-f]{4}…": r"[0-9a-f]{32}"}
SAMPLE = re.compile("|".join(f"(?:{sample})" for sample in SAMPLES))
DURATION = re.compile(r"\d+(?:\.\d+)? ms")
TXN_ID = SAMPLES[r"U\d{10}-…"]
# Commands that run until stopped: not run (the text around them says what they do).
UNTIL_STOPPED = ("citcon-sim listen",)


@dataclass
class Step:
    command: str
    expect: str | None = None  # what its `# → ...` lines say it prints (one per line)


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
                # A parenthesis after three spaces or more, at the end, is a remark
                # about the output, not the output.
                printed = re.sub(r"\s{3,}\(.*\)$", "", said[1])
                last = out[-1]
                last.expect = printed if last.expect is None else f"{last.expect}\n{printed}"
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
             "curl -s http://127.0.0.1:8080/b   # a comment bash ignores\n"
             "citcon-sim pay U0000600001-…\n"
             "# → U0000600001-…  success  500 USD\n# → paid     aligned   (a remark)\n")
    first, second, third = steps(block)
    assert first.command.endswith("--data-urlencode 'x=1'") and "\\\n" in first.command
    assert first.expect == "http://127.0.0.1:8080/q?q=U0000600001-…"
    assert second == Step("curl -s http://127.0.0.1:8080/b   # a comment bash ignores")
    assert third.expect == "U0000600001-…  success  500 USD\npaid     aligned"


def test_expected_output_fills_sample_ids_and_durations() -> None:
    found: dict[str, str] = {}
    txn, notify = "U0000600007-" + "ab" * 10, "0123456789abcdef" * 2
    said = "IPN      5c1f…  attempt 1 HTTP 200 in 3 ms -> U0000600003-… (U0000600003-…)"
    assert matches(said, {}, found,
                   f"IPN      {notify}  attempt 1 HTTP 200 in 12.5 ms -> {txn} ({txn})")
    assert found == {"U0000600003-…": txn, "5c1f…": notify}
    # Once found, a sample stands for that id only; within a line, for one id.
    assert not matches("U0000600003-…", {}, found, "U0000600008-" + "cd" * 10)
    assert not matches("U0000600004-… U0000600004-…", {}, {},
                       f"{txn} U0000600008-" + "cd" * 10)
    assert fill("citcon-sim pay U0000600003-…", {}, found) == f"citcon-sim pay {txn}"
    with pytest.raises(AssertionError, match="no earlier step printed"):
        fill("citcon-sim pay U0000600009-…", {}, found)


def matches(expect: str, swaps: dict[str, str], found: dict[str, str], output: str) -> bool:
    """Whether ``output`` is what ``expect`` says: ``…`` matches anything and a duration
    any duration; a sample id is the id found for it before, or matches a real one, then
    recorded in ``found``."""
    for old, new in swaps.items():
        expect = expect.replace(old, new)
    pattern, names = "", dict[str, str]()  # group name: the sample it captures
    for piece in re.split(rf"({SAMPLE.pattern}|…|{DURATION.pattern})", expect):
        if SAMPLE.fullmatch(piece):
            if piece in found:
                pattern += re.escape(found[piece])
            elif piece in names.values():
                pattern += f"(?P={next(n for n, s in names.items() if s == piece)})"
            else:
                names[f"id{len(names)}"] = piece
                real = next(r for s, r in SAMPLES.items() if re.fullmatch(s, piece))
                pattern += f"(?P<id{len(names) - 1}>{real})"
        elif piece == "…":
            pattern += ".*?"
        elif DURATION.fullmatch(piece):
            pattern += DURATION.pattern
        else:
            pattern += re.escape(piece)
    match = re.fullmatch(pattern, output)
    if match is None:
        return False
    found.update({sample: match[name] for name, sample in names.items()})
    return True


def fill(command: str, swaps: dict[str, str], found: dict[str, str]) -> str:
    """``command`` with the test's addresses and the ids found for its samples."""
    for old, new in swaps.items():
        command = command.replace(old, new)

    def real(sample: re.Match[str]) -> str:
        assert sample[0] in found, f"{command!r} needs an id no earlier step printed"
        return found[sample[0]]
    return SAMPLE.sub(real, command)


def run_step(step: Step, *, swaps: dict[str, str], found: dict[str, str], cwd: Path,
             env: dict[str, str]) -> str:
    command = fill(step.command, swaps, found)
    result = run(["bash", "-c", command], cwd=cwd, env=env, timeout=60)
    output = result.stdout.strip()
    if output.startswith("{"):  # an error envelope is not "works"
        assert json.loads(output).get("result") != "fail", (command, output)
    if step.expect is not None:
        assert matches(step.expect, swaps, found, output), (
            f"{command}\nprinted {output!r}\nREADME says {step.expect!r}")
    return output


@pytest.mark.slow
def test_following_the_readme_in_a_fresh_venv(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the README's examples use curl, which is not installed")
    [run_it] = readme_steps(RUN_IT)
    payment = readme_steps(FIRST_PAYMENT)
    assert payment and any(s.expect for s in payment)
    command_line = [s for s in readme_steps(COMMAND_LINE)
                    if not s.command.startswith(UNTIL_STOPPED)]
    shown = {" ".join(s.command.split()[1:3]) for s in command_line if s.expect}
    assert {"trigger payment", "ipn resend"} <= shown, shown
    assert {s.split()[0] for s in shown} >= {"pay", "advance", "logs"}, shown
    checkout = copy_source(tmp_path / "checkout")
    bin_dir = fresh_venv(tmp_path / "venv")
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    with threaded_ipn_receiver() as receiver, background(
            ["bash", "-c", run_it.command], cwd=checkout,
            env={**env, "CITCON_SIM_PORT": "0"}) as server:
        base = server.wait_for(BANNER, timeout=600)[1]
        # "It prints the base URL and a curl example to paste": paste it.
        server.wait_for(re.compile(r"try it:"), timeout=30)
        example = [server.lines.get(timeout=30)]
        while example[-1].rstrip().endswith("\\"):  # up to its last continued line
            example.append(server.lines.get(timeout=30))
        pasted = run(["bash", "-c", "".join(example)], cwd=tmp_path, env=env).stdout
        assert re.fullmatch(rf"{re.escape(base)}/payment/qr\?q={TXN_ID}\s*", pasted), pasted
        found: dict[str, str] = {}
        swaps = {DEFAULT_BASE: base, README_RECEIVER: receiver.url}
        # A command that finds the server by its settings (not a URL) finds this one.
        step_env = {**env, "CITCON_SIM_PORT": base.rsplit(":", 1)[1], "CITCON_SIM_URL": base}
        for step in payment:
            run_step(step, swaps=swaps, found=found, cwd=tmp_path, env=step_env)
        assert found, "no step printed a transaction id"
        for step in command_line:
            run_step(step, swaps=swaps, found=found, cwd=tmp_path, env=step_env)
        # The IPN `trigger payment` said it delivered, then resent, reached the receiver.
        trigger = next(s for s in command_line if "trigger payment" in s.command)
        sample = SAMPLE.search(trigger.expect or "")
        assert sample, trigger
        triggered = found[sample[0]]
        assert sum(1 for form in receiver.posts if form.get("id") == triggered) == 2
    assert server.proc.returncode == 0, "".join(server.output)
