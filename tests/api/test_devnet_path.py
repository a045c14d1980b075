"""The README's devnet path runs as written: anvil started by ``hardhat-free-devnet/start.sh``, the contracts
deployed with ``knowledger deploy --target devnet --rpc-url …``, then ``knowledger serve --seed-demo`` on
them (it signs as the manifest's registrar). Started again, it reuses that deployment and its database."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests import faults

from .conftest import Demo

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.anvil


def devnet_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### On anvil, a testnet and PostgreSQL") :]
    block = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_the_readme_devnet_path_works_verbatim(demo: Demo, anvil_bin: Path, tmp_path: Path) -> None:
    start, deploy, serve = devnet_lines()
    assert start == "hardhat-free-devnet/start.sh" and deploy.startswith(".venv/bin/knowledger deploy")
    port = faults.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNOWLEDGER_")}
    env.update(
        KNOWLEDGER_DEVNET_PORT=str(port),
        KNOWLEDGER_DEVNET_RUN_DIR=str(tmp_path / "devnet"),
        KNOWLEDGER_MANIFEST_PATH=str(tmp_path / "local-devnet.json"),
        KNOWLEDGER_ANVIL_BIN=str(anvil_bin),
    )
    root = faults.ROOT
    knowledger = root / ".venv" / "bin" / "knowledger"
    if not knowledger.exists():  # an environment without the project's venv: the same command elsewhere
        deploy = deploy.replace(".venv/bin/knowledger", f"{faults.sys.executable} -m backend.cli")
    try:
        subprocess.run(["bash", "-c", start], cwd=root, env=env, check=True, capture_output=True, timeout=120)
        deployed = subprocess.run(
            ["bash", "-c", deploy.replace("http://127.0.0.1:8545", url)],
            cwd=root, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        manifest = (tmp_path / "local-devnet.json").read_text()
        words = shlex.split(serve.replace("http://127.0.0.1:8545", url))
        chain = dict(w.split("=", 1) for w in words if "=" in w and w.startswith("KNOWLEDGER_"))
        assert words[-2:] == ["serve", "--seed-demo"] and chain["KNOWLEDGER_CHAIN_TARGET"] == "devnet"
        for attempt in (1, 2):  # the second start reuses the deployment and the database
            served = faults.serve(tmp_path / "state", demo.model_dir, chain=chain, env=env | chain)
            try:
                learner = faults.learners(served, 1)[
                    0
                ]  # grants through the registrar: it signs as the deployer
                assert faults.recommendation(served, learner).startswith("rec_"), attempt
            finally:
                served.stop()
            assert (tmp_path / "local-devnet.json").read_text() == manifest  # nothing deployed again
    finally:
        subprocess.run(
            ["bash", "-c", "hardhat-free-devnet/stop.sh"], cwd=root, env=env, capture_output=True, timeout=60
        )
