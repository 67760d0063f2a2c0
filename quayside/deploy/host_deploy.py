"""One host's deploy, as named steps over one executor (one SSH connection), few round trips::

    facts      read_facts: current, release dirs, current manifest           1 round trip
               (not sent when it is byte-identical to ``spec.known_manifest``'s JSON; not
               read at all when the host is expected as the last deploy left it: the stage
               is then guarded, and a host that differs answers with its real facts)
    plan       plans.plan_release (pure, once per distinct facts)
    stage      the changed files into a copy of the previous release, shared links, the
               manifest, and - without pre-switch hooks - the switch on the controller's go
               and the prune (``stage_transport``)                           1 round trip
    pre_switch hooks, then the switch (+ prune)                             1 per hook, +1
    post_switch hooks, health check                                         1 per hook/probe

A one-file change without hooks costs two round trips on one connection (one when guarded).
A failure before the switch removes the new release dir (the host's stage script does, and
this engine again, best effort); a failure after it switches the host back to its previous
release and re-runs the post-switch hooks there. The result is a ``HostReport``: failures are
reported, never raised.
"""

from __future__ import annotations

from dataclasses import replace

from quayside.commands.release import current_link, read_facts, release_dir
from quayside.deploy import scripts, stage_transport
from quayside.deploy.health import check_health
from quayside.deploy.hooks import run_hooks
from quayside.deploy.host_plan import FactsDiffer, guardable, plan_from, split_facts_after
from quayside.deploy.release_spec import ReleaseSpec
from quayside.deploy.round_trips import LogLine, RoundTrips
from quayside.deploy.stage_transport import StageJob
from quayside.deploy.switch_back import switch_back
from quayside.errors import ConnectionLost, HostError
from quayside.executors.base import Executor
from quayside.plans.release import ReleasePlan, describe
from quayside.release.host_report import HostReport, failure_message


def deploy_host(
    executor: Executor,
    host: str,
    spec: ReleaseSpec,
    *,
    dry_run: bool = False,
    on_line: LogLine | None = None,
) -> HostReport:
    """Deploy ``spec`` to one host through ``executor``; never raises for host failures.

    Args:
        executor: the host's executor (its one connection is reused for every step).
        host: inventory name of the host.
        spec: the release.
        dry_run: read facts and plan only; ``plan_text`` says what would change.
        on_line: receives hook output lines and progress notes.

    Returns:
        The host's report: ``succeeded``, ``no_change``, ``planned`` (dry run) or ``failed``
        with the step and the reason.

    Example:
        >>> with SSHExecutor("web-1", "10.0.0.5", key_file=key) as ex:
        ...     deploy_host(ex, "web-1", spec).status
        'succeeded'
    """
    trips = RoundTrips(executor, host, on_line)
    try:
        return HostDeploy(trips, spec).run(dry_run=dry_run)
    except FactsDiffer as differ:
        # the guard found other facts than the last deploy left (nothing was touched):
        # plan from the facts it sent back and stage unguarded
        return HostDeploy(trips, spec).run(dry_run=dry_run, facts=differ.facts)


class HostDeploy:
    """The steps of one host's deploy; ``report`` holds the step reached so far."""

    def __init__(self, trips: RoundTrips, spec: ReleaseSpec) -> None:
        self.trips = trips
        self.spec = spec
        self.host = trips.host
        self.report = HostReport(self.host, "failed", "facts")
        self.root = ""
        self.env: dict[str, str] = {}
        self.job: StageJob | None = None

    def step(self, name: str, **changes: object) -> None:
        self.report = replace(self.report, step=name, **changes)  # type: ignore[arg-type]

    def done(self, **changes: object) -> HostReport:
        return self.trips.report(self.report, **changes)

    def run(self, *, dry_run: bool, facts: str | None = None) -> HostReport:
        """Every step in order, the failure handling around them.

        Raises:
            FactsDiffer: a guarded stage found other facts (nothing was touched).
        """
        try:
            self.root = self.spec.root_for(self.host)
            plan, guard = self.plan(facts, dry_run)
            self.report = replace(self.report, previous=plan.facts.current)
            if dry_run:
                return self.done(status="planned", step="plan", plan_text=describe(plan))
            if plan.no_change:
                message = f"no change: {plan.facts.current} has this content"
                return self.done(status="no_change", step="plan", message=message)
            self.env = self.spec.env_for(self.host, self.root, plan.facts.current)
            self.job = StageJob(self.trips, self.spec, self.root, plan, guard)
            out = self.stage(self.job)
            if not self.job.switch_now:
                out = self.pre_switch_then_switch(self.job)
            self.confirm_switch(out)
            self.verify()
            return self.done(status="succeeded", step="done", message="")
        except FactsDiffer:
            raise  # nothing was touched: deploy_host plans again from the real facts
        except Exception as e:  # reported per host, never raised
            return self.fail(e)

    def plan(self, facts: str | None, dry_run: bool) -> tuple[ReleasePlan, tuple[str, str] | None]:
        """The host's plan, and the guard to stage it with when it is planned from the facts
        the last deploy left (no facts round trip)."""
        spec, root = self.spec, self.root
        known = spec.known_manifest_sha256()
        expected = None
        if facts is None and known is not None and not dry_run:
            expected = spec.expected_facts.get(self.host)
        if expected is not None:
            self.step("plan")
            plan = plan_from(spec, root, expected, known)
            if guardable(spec, plan):
                assert known is not None
                return plan, (known, expected)
            self.step("facts")  # read the real facts, then plan as usual
        if facts is None:
            facts = self.trips.run(read_facts(root, known), timeout=120)
        self.step("plan")
        return plan_from(spec, root, facts, known), None

    def stage(self, job: StageJob) -> str:
        self.step("stage")
        staged = stage_transport.stage(job, self.step)
        self.report = replace(
            self.report, bytes_sent=staged.bytes_sent, files_sent=staged.files_sent
        )
        return staged.output

    def pre_switch_then_switch(self, job: StageJob) -> str:
        self.step("pre_switch")
        new_dir = release_dir(self.root, self.spec.release_id)
        run_hooks(self.trips, self.spec.hooks.pre_switch, self.env, new_dir, "pre-switch")
        self.step("switch")
        return stage_transport.switch_after_hooks(job)

    def confirm_switch(self, out: str) -> None:
        out, after = split_facts_after(out)
        self.report = replace(self.report, facts_after=after)
        if "switched:" not in out:
            raise HostError(self.host, f"current was not switched to {self.spec.release_id}")
        self.step("post_switch", switched=True)

    def verify(self) -> None:
        """Post-switch hooks, then the health check, in the new release."""
        spec, cwd = self.spec, current_link(self.root)
        run_hooks(self.trips, spec.hooks.post_switch, self.env, cwd, "post-switch")
        if spec.health is not None:
            self.step("health")
            address = self.trips.executor.address
            check_health(
                self.trips, spec.health, host=self.host, address=address, env=self.env, cwd=cwd
            )

    def fail(self, error: Exception) -> HostReport:
        """The failed report; a switched host is switched back, a staged release removed."""
        message = failure_message(error, self.host)
        if isinstance(error, ConnectionLost) and self.trips.in_flight:
            # the executor says the connection broke under the command; what it carried
            message += f" ({self.trips.in_flight} bytes of input were sent or in flight)"
        executor, previous = self.trips.executor, self.report.previous
        if self.report.switched:
            try:
                switch_back(
                    executor, self.root, previous, hooks=self.spec.hooks.post_switch, env=self.env
                )
                message += f"; switched back to {previous or 'no release'}"
                return self.done(status="failed", message=message, switched=False)
            except Exception as back:  # the host is unreachable now
                message += f"; switching back failed: {failure_message(back)}"
        elif self.job is not None:
            try:
                executor.run(scripts.remove_release(self.root, self.spec.release_id), timeout=120)
            except Exception:  # best effort: the next deploy replaces it
                pass
        return self.done(status="failed", message=message)
