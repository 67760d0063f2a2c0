"""Ansible doing the first deploy: ``ansible-playbook`` from the venv copies and unpacks the
release tarball and switches the symlink (bench/playbooks/git_deploy.yml)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from bench.git_deploy.fleet import Host
from bench.harness import BENCH_DIR, run_argv

PLAYBOOK = BENCH_DIR / "playbooks" / "git_deploy.yml"


class Ansible:
    """``ansible-playbook`` from the venv: copy + unpack the tarball, switch the symlink."""

    def __init__(self, work: Path, hosts: Sequence[Host], key_file: Path, known_hosts: Path):
        self.work = work
        self.inventory = work / "ansible-inventory.yml"
        common = (
            f"-o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null "
            "-o StrictHostKeyChecking=yes"
        )
        python = shutil.which("python3", path="/usr/bin:/usr/local/bin") or "/usr/bin/python3"
        self.inventory.write_text(
            yaml.safe_dump(
                {
                    "web": {
                        "hosts": {
                            h.name: {
                                "ansible_host": h.address,
                                "ansible_port": h.port,
                                "ansible_user": h.user,
                                "ansible_ssh_private_key_file": str(key_file),
                                "ansible_ssh_common_args": common,
                                "ansible_python_interpreter": python,
                            }
                            for h in hosts
                        }
                    }
                }
            )
        )
        (work / "ansible-home").mkdir(exist_ok=True)
        remote_tmp = work / "ansible-remote-tmp"  # the hosts' login user writes it
        remote_tmp.mkdir(exist_ok=True)
        for user in {h.user for h in hosts}:
            shutil.chown(remote_tmp, user=user)
        self.env = dict(os.environ)
        self.env.update(
            {
                "ANSIBLE_HOME": str(work / "ansible-home"),
                "ANSIBLE_LOCAL_TEMP": str(work / "ansible-home" / "tmp"),
                "ANSIBLE_REMOTE_TEMP": str(remote_tmp),
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "ansible-home" / "cp"),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "false",
                "LC_ALL": "C.UTF-8",
            }
        )
        # the venv's own (python -m bench without `uv run` has no venv on PATH), else PATH's
        beside = Path(sys.executable).parent / "ansible-playbook"
        found = str(beside) if beside.is_file() else shutil.which("ansible-playbook")
        self.playbook_bin = found or ""

    @property
    def available(self) -> bool:
        return bool(self.playbook_bin)

    def deploy(self, forks: int | None, deploy_root: str, release: str, tarball: Path) -> None:
        run_argv(
            playbook_argv(self.playbook_bin, self.inventory, forks, deploy_root, release, tarball),
            env=self.env,
            cwd=self.work,
        )


def playbook_argv(
    playbook_bin: str,
    inventory: Path,
    forks: int | None,
    deploy_root: str,
    release: str,
    tarball: Path,
) -> list[str]:
    """``ansible-playbook`` for one release (Ansible's default forks when ``forks`` is None)."""
    argv = [playbook_bin, "-i", str(inventory), str(PLAYBOOK)]
    if forks is not None:
        argv += ["--forks", str(forks)]
    argv += [
        "-e",
        f"deploy_root={deploy_root}",
        "-e",
        f"release={release}",
        "-e",
        f"tarball={tarball}",
    ]
    return argv
