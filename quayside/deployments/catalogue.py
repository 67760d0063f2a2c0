"""The flow catalogue: one entry per Prefect deployment, as data.

Callers start runs by catalogue name (``quayside.runs.start_run("hello-release", ...)``),
never by importing flow functions. Registration (``quayside.deployments.register``) and
``prefect.yaml`` (rendered by ``quayside.deployments.render``) are derived from this list only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeploymentSpec:
    """One Prefect deployment of a Quayside flow.

    Attributes:
        name: the catalogue name; also the Prefect deployment name.
        flow_name: the ``@flow(name=...)`` of the entrypoint's flow.
        entrypoint: ``path/to/module.py:function`` relative to the project root.
        description: shown in the Prefect UI.
        parameters: default parameters.
        tags: Prefect tags (the UI filters on them).
        concurrency_limit: at most this many runs at once (None = unlimited).
        cron: optional cron schedules (each a cron string, UTC unless timezone is given).
        timezone: time zone of the cron schedules.
        triggerable: may be started by the task API, hooks and chat (False = UI and CLI only).
        scope: what a run acts on, for authorization (``quayside.auth.run_scope``):
            ``app-env`` (the ``app``/``env`` parameters: the app's space and project),
            ``host-group`` (the ``group`` parameter: every space owning one of its hosts), or
            ``none`` (SUPER only).
        minimum_role: the lowest role that may start a run, on every place it acts on.
    """

    name: str
    flow_name: str
    entrypoint: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    concurrency_limit: int | None = None
    cron: tuple[str, ...] = ()
    timezone: str = "UTC"
    triggerable: bool = True
    scope: str = "none"
    minimum_role: str = "SUPER"

    @property
    def full_name(self) -> str:
        """``flow-name/deployment-name``, how Prefect addresses a deployment."""
        return f"{self.flow_name}/{self.name}"

    @property
    def module_path(self) -> str:
        return self.entrypoint.split(":", 1)[0]

    @property
    def function_name(self) -> str:
        return self.entrypoint.split(":", 1)[1]

    @property
    def module_entrypoint(self) -> str:
        """``quayside.flows.module:function``: the entrypoint as an import path, which
        Prefect's engine imports by name (``PREFECT__FLOW_ENTRYPOINT``) instead of running the
        file again as a new module."""
        module = self.module_path.removesuffix(".py").replace("/", ".")
        return f"{module}:{self.function_name}"


CATALOGUE: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        name="hello-release",
        flow_name="hello-release",
        entrypoint="quayside/flows/hello_release.py:hello_release",
        description="Run one command on every host of a group over SSH and record a release.",
        parameters={"group": "demo", "command": ["uname", "-a"]},
        tags=("quayside", "hello"),
        # an arbitrary command as the deploy user: never from the API, hooks or chat
        triggerable=False,
        scope="host-group",
        minimum_role="SUPER",
    ),
    DeploymentSpec(
        name="approval-demo",
        flow_name="approval-demo",
        entrypoint="quayside/flows/approval_demo.py:approval_demo",
        description="Wait for an approval under a policy, then finish (tries the approval gate).",
        parameters={"app": "demo", "env": "prod"},
        tags=("quayside", "approval"),
        triggerable=False,
    ),
    DeploymentSpec(
        name="git-deploy",
        flow_name="git-deploy",
        entrypoint="quayside/flows/git_deploy.py:git_deploy",
        description="Deploy a git ref to an app's environment: versioned release directories, "
        "atomic switch, batches, health checks, automatic rollback past the failure threshold.",
        parameters={},
        tags=("quayside", "deploy"),
        scope="app-env",
        minimum_role="DEVELOPER",
    ),
    DeploymentSpec(
        name="rollback",
        flow_name="rollback",
        entrypoint="quayside/flows/rollback.py:rollback",
        description="Switch every host back to an earlier release (restored from the artifact "
        "store if pruned); pauses automatic triggers for the app/env.",
        parameters={},
        tags=("quayside", "rollback"),
        # on-call teams roll back from chat; the role and the approval policy apply as for
        # a deploy (a policy may exempt rollbacks: ``rollback: false``)
        scope="app-env",
        minimum_role="DEVELOPER",
    ),
    DeploymentSpec(
        name="config-publish",
        flow_name="config-publish",
        entrypoint="quayside/flows/config_publish.py:config_publish",
        description="Publish config center files to a service's hosts: diff, approve, "
        "validate the staged set, atomic swap, reload or restart, verify, restore on failure; "
        "canary first when asked.",
        parameters={},
        tags=("quayside", "config"),
        scope="app-env",
        minimum_role="DEVELOPER",
    ),
    DeploymentSpec(
        name="image-build",
        flow_name="image-build",
        entrypoint="quayside/flows/image_build.py:image_build",
        description="Build an image app's git ref with the Docker engine (layer cache "
        "reused), version it (the tag's semver, else the next patch), push it to the build "
        "environment's registry and record its digest and artifact checksum.",
        # the build environment: the one whose registry receives new images
        parameters={"env": "test"},
        tags=("quayside", "image"),
        scope="app-env",
        minimum_role="DEVELOPER",
    ),
    DeploymentSpec(
        name="image-release",
        flow_name="image-release",
        entrypoint="quayside/flows/image_release.py:image_release",
        description="Run an app's image (version or digest) on its environment's Docker "
        "hosts with the environment's config: new container beside the old, checked (health, "
        "HTTP, artifact checksum), traffic switched through nginx, old removed; old kept on "
        "failure.",
        parameters={},
        tags=("quayside", "image"),
        scope="app-env",
        minimum_role="DEVELOPER",
    ),
    DeploymentSpec(
        name="image-promote",
        flow_name="image-promote",
        entrypoint="quayside/flows/image_promote.py:image_promote",
        description="Promote an app's image (version or digest) from one environment to the "
        "next: approval (digest, version, what runs there now, commit range, copy plan), copy "
        "by digest between the two registries (verified, only missing blobs), then an image "
        "release in the target environment.",
        parameters={},
        tags=("quayside", "image"),
        # acts on to_env (its registry and hosts): the scope's environment is to_env
        scope="app-env",
        minimum_role="DEVELOPER",
    ),
)


def by_name(name: str) -> DeploymentSpec:
    """The catalogue entry called ``name`` (or whose ``full_name`` is ``name``).

    Raises:
        quayside.errors.NotFoundError: naming the entries that exist.
    """
    from quayside.errors import NotFoundError

    for spec in CATALOGUE:
        if name in (spec.name, spec.full_name):
            return spec
    known = ", ".join(s.name for s in CATALOGUE)
    raise NotFoundError(f"no deployment '{name}' in the catalogue (known: {known})")
