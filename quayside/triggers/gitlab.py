"""GitLab webhooks: Tag Push Hook, Push Hook and Pipeline Hook, and what to do about them.

Payloads follow GitLab's "Webhook events" documentation
(https://docs.gitlab.com/user/project/integrations/webhook_events/). GitLab sends the event name
in ``X-Gitlab-Event`` and the configured secret in ``X-Gitlab-Token`` (a plain shared secret, not
an HMAC), so :func:`verify_token` compares it in constant time. Deliveries may repeat (retries,
a tag push and the tag's pipeline): :func:`dedupe_key` keys one deploy per app+repo+tag+commit.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from quayside.errors import ConfigError, InputError
from quayside.user_names import UserName, clean_name

ZERO_SHA = "0" * 40
TAG_PREFIX = "refs/tags/"
BRANCH_PREFIX = "refs/heads/"

EVENT_HEADERS = {
    "Tag Push Hook": "tag_push",
    "Push Hook": "push",
    "Pipeline Hook": "pipeline",
}
"""``X-Gitlab-Event`` values we handle, mapped to the payload's ``object_kind``."""

TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}")
ENV_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_PATTERN_CHARS = 200


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GitlabProject(_Model):
    """The ``project`` object of a payload (only the fields Quayside uses)."""

    id: int | None = None
    name: str | None = None
    path_with_namespace: str
    web_url: str | None = None
    git_http_url: str | None = None
    git_ssh_url: str | None = None


class GitlabRepository(_Model):
    """The deprecated ``repository`` object, kept for its URLs."""

    name: str | None = None
    url: str | None = None
    homepage: str | None = None
    git_http_url: str | None = None
    git_ssh_url: str | None = None


DisplayName = Annotated[str | None, AfterValidator(clean_name)]
"""A GitLab display name ("John Smith"): informational, so cut down to name characters."""


class GitlabUser(_Model):
    """The ``user`` object of pipeline payloads."""

    id: int | None = None
    name: DisplayName = None
    username: UserName | None = None


class _RefPush(_Model):
    before: str
    after: str
    ref: str
    checkout_sha: str | None = None
    user_id: int | None = None
    user_name: DisplayName = None
    user_username: UserName | None = None
    project_id: int | None = None
    project: GitlabProject
    repository: GitlabRepository | None = None
    total_commits_count: int | None = None

    @property
    def deleted(self) -> bool:
        """The ref was deleted (``after`` is all zeros)."""
        return self.after == ZERO_SHA

    @property
    def commit(self) -> str:
        """The commit the ref points at: ``checkout_sha`` (annotated tags: not the tag object)."""
        return self.checkout_sha or self.after

    @property
    def user(self) -> str | None:
        """Who pushed: the username if sent (refused unless name characters: it becomes the
        release's requester), else the display name cut down to name characters."""
        return self.user_username or self.user_name


class TagPushEvent(_RefPush):
    """``X-Gitlab-Event: Tag Push Hook`` — a tag was created or deleted."""

    object_kind: Literal["tag_push"]

    @property
    def tag(self) -> str:
        """The tag name (``ref`` without ``refs/tags/``)."""
        return self.ref.removeprefix(TAG_PREFIX)


class PushEvent(_RefPush):
    """``X-Gitlab-Event: Push Hook`` — commits pushed to a branch (never sent for tags)."""

    object_kind: Literal["push"]


class PipelineAttributes(_Model):
    """``object_attributes`` of a pipeline payload."""

    id: int
    ref: str
    tag: bool = False
    sha: str
    before_sha: str | None = None
    status: str
    source: str | None = None
    url: str | None = None


class PipelineEvent(_Model):
    """``X-Gitlab-Event: Pipeline Hook`` — a pipeline changed status."""

    object_kind: Literal["pipeline"]
    object_attributes: PipelineAttributes
    user: GitlabUser | None = None
    project: GitlabProject


GitlabEvent = Annotated[
    TagPushEvent | PushEvent | PipelineEvent, Field(discriminator="object_kind")
]
_EVENT_ADAPTER: TypeAdapter[TagPushEvent | PushEvent | PipelineEvent] = TypeAdapter(GitlabEvent)


def parse_event(
    payload: Mapping[str, object], event_header: str | None
) -> TagPushEvent | PushEvent | PipelineEvent | None:
    """Validate a webhook body against the event named in ``X-Gitlab-Event``.

    Args:
        payload: the decoded JSON body.
        event_header: the ``X-Gitlab-Event`` header value.

    Returns:
        The typed event, or ``None`` for an event Quayside does not handle (issues, merge
        requests...), which the gateway acknowledges without doing anything.

    Raises:
        InputError: the header is missing, the body's ``object_kind`` contradicts it, or a
            field Quayside needs is missing or has the wrong type.
    """
    if not event_header:
        raise InputError("missing X-Gitlab-Event header")
    kind = EVENT_HEADERS.get(event_header.strip())
    if kind is None:
        return None
    if payload.get("object_kind") != kind:
        raise InputError(
            f"X-Gitlab-Event is {event_header.strip()!r} but object_kind is not {kind!r}"
        )
    try:
        return _EVENT_ADAPTER.validate_python(payload)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}"
            for item in e.errors(include_url=False, include_input=False)
        )
        raise InputError(f"{event_header.strip()} payload: {problems}") from None


def verify_token(expected: str, given: str | None) -> bool:
    """Compare the ``X-Gitlab-Token`` header with the app's configured secret in constant time.

    Args:
        expected: the secret configured for the app. An empty secret never verifies.
        given: the header value, or ``None`` when absent.

    Returns:
        ``True`` only when both are non-empty and equal.
    """
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


@dataclass(frozen=True)
class TagRule:
    """Tags matching ``pattern`` (``re.search``; anchor with ``^``) deploy to ``environment``."""

    pattern: re.Pattern[str]
    environment: str
    approval: bool

    @classmethod
    def compile(
        cls, pattern: str, environment: str, approval: bool, *, where: str = "tag_rules"
    ) -> TagRule:
        """Build a rule from configuration, validating the pattern and environment name.

        Args:
            pattern: a Python regular expression, e.g. ``^release-``.
            environment: the environment to deploy to.
            approval: whether the run needs approval before it deploys.
            where: the key path for error messages, e.g. ``apps.web.tag_rules[0]``.

        Returns:
            The compiled rule.

        Raises:
            ConfigError: the pattern does not compile or is too long, or the environment name
                is not valid.
        """
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ConfigError(f"{where}.pattern: longer than {MAX_PATTERN_CHARS} characters")
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"{where}.pattern: not a valid regular expression: {e}") from None
        if not ENV_RE.fullmatch(environment):
            raise ConfigError(
                f"{where}.environment: {environment[:64]!r} is not a valid environment name"
            )
        return cls(pattern=compiled, environment=environment, approval=bool(approval))


def compile_rules(
    raw: Sequence[Mapping[str, object]], *, where: str = "tag_rules"
) -> list[TagRule]:
    """Compile a list of ``{pattern, environment, approval}`` mappings from configuration.

    Args:
        raw: the rules as configured, in priority order.
        where: the key path of the list, for error messages.

    Returns:
        The compiled rules in the same order.

    Raises:
        ConfigError: a rule is not a mapping, lacks a key, has an unknown key or fails
            :meth:`TagRule.compile`.
    """
    rules: list[TagRule] = []
    for i, item in enumerate(raw):
        path = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{path}: expected a mapping with pattern, environment, approval")
        unknown = set(item) - {"pattern", "environment", "approval"}
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        pattern, environment = item.get("pattern"), item.get("environment")
        approval = item.get("approval", False)
        if not isinstance(pattern, str) or not isinstance(environment, str):
            raise ConfigError(f"{path}: pattern and environment are required strings")
        if not isinstance(approval, bool):
            raise ConfigError(f"{path}.approval: must be true or false")
        rules.append(TagRule.compile(pattern, environment, approval, where=path))
    return rules


def match_tag(rules: Iterable[TagRule], tag: str) -> TagRule | None:
    """The first rule whose pattern matches ``tag``.

    Args:
        rules: rules in priority order.
        tag: the tag name (without ``refs/tags/``).

    Returns:
        The matching rule, or ``None``.
    """
    for rule in rules:
        if rule.pattern.search(tag):
            return rule
    return None


def dedupe_key(app: str, repo: str, tag: str, commit: str) -> str:
    """A stable key for "deploy this commit of this repo as this tag to this app", for
    idempotent runs (two apps built from one repo are two runs).

    Args:
        app: the Quayside app the tag deploys.
        repo: the project path (``group/project``).
        tag: the tag name.
        commit: the commit SHA.

    Returns:
        ``git-tag:`` followed by a SHA-256 hex digest; the same inputs give the same key.
    """
    material = "\x00".join((app, repo.strip().lower(), tag, commit.lower()))
    return "git-tag:" + hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class HookDecision:
    """What to do about a delivery: deploy (with the details) or ignore (with the reason)."""

    action: Literal["deploy", "ignore"]
    reason: str
    app: str | None = None
    environment: str | None = None
    ref: str | None = None
    commit: str | None = None
    requires_approval: bool = False
    repo: str | None = None
    user: str | None = None
    dedupe_key: str | None = None

    @property
    def deploy(self) -> bool:
        """``True`` when a run should start."""
        return self.action == "deploy"


def _ignore(reason: str, repo: str | None = None) -> HookDecision:
    return HookDecision(action="ignore", reason=reason, repo=repo)


def _deploy_tag(
    app: str,
    repo: str,
    tag: str,
    commit: str,
    rules: Iterable[TagRule],
    user: str | None,
    via: str,
) -> HookDecision:
    if not TAG_RE.fullmatch(tag) or ".." in tag:
        return _ignore(f"tag {tag[:80]!r} has characters Quayside does not deploy", repo)
    rule = match_tag(rules, tag)
    if rule is None:
        return _ignore(f"tag {tag!r} matches no tag rule of app {app!r}", repo)
    return HookDecision(
        action="deploy",
        reason=f"{via}: tag {tag!r} matches {rule.pattern.pattern!r} -> {rule.environment}",
        app=app,
        environment=rule.environment,
        ref=tag,
        commit=commit,
        requires_approval=rule.approval,
        repo=repo,
        user=user,
        dedupe_key=dedupe_key(app, repo, tag, commit),
    )


def decide(
    event: TagPushEvent | PushEvent | PipelineEvent | None,
    rules: Iterable[TagRule],
    *,
    app: str,
) -> HookDecision:
    """Decide whether a (verified) delivery deploys, and where.

    A created tag that matches a rule deploys its commit. A successful pipeline for a tag is
    treated the same way (configure either the tag push or the pipeline hook; if both arrive,
    their dedupe keys are equal and one run starts). Everything else is ignored with a reason:
    tag deletions, tags matching no rule, branch pushes, unfinished or failed pipelines and
    event types Quayside does not handle.

    Args:
        event: the parsed event (``None`` for an unhandled event type).
        rules: the app's tag rules in priority order.
        app: the Quayside app this webhook belongs to.

    Returns:
        The decision.
    """
    if event is None:
        return _ignore("event type not handled by Quayside")
    repo = event.project.path_with_namespace
    if isinstance(event, TagPushEvent):
        if event.deleted:
            return _ignore(f"tag {event.tag!r} was deleted", repo)
        if not event.ref.startswith(TAG_PREFIX):
            return _ignore(f"ref {event.ref[:80]!r} is not a tag", repo)
        return _deploy_tag(app, repo, event.tag, event.commit, rules, event.user, "tag push")
    if isinstance(event, PushEvent):
        return _ignore(f"push to {event.ref[:80]!r} is not a tag push", repo)
    attrs = event.object_attributes
    if not attrs.tag:
        return _ignore(f"pipeline {attrs.id} is for branch {attrs.ref[:80]!r}, not a tag", repo)
    if attrs.status != "success":
        return _ignore(f"pipeline {attrs.id} status is {attrs.status!r}, not 'success'", repo)
    user = event.user.username if event.user else None
    return _deploy_tag(
        app, repo, attrs.ref.removeprefix(TAG_PREFIX), attrs.sha, rules, user, "pipeline"
    )
