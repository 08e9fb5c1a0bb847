"""The team's policy file: roles, approval rules and approver checks.

A policy is versioned TOML kept in the team's own repository (``OPSLOOP_POLICY_FILE``);
``bot/default_policy.toml`` ships as the default. Rules are tried in order and the first
match decides; a change that no rule matches needs approval (fail closed).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.errors import ConfigError
from bot.events import ADMIN, Identity

__all__ = [
    "ADMIN_APPROVER",
    "DEFAULT_POLICY_FILE",
    "ApprovalRule",
    "Person",
    "Policy",
    "RiskTier",
    "Schedule",
    "load_policy",
]

DEFAULT_POLICY_FILE = Path(__file__).with_name("default_policy.toml")

ADMIN_APPROVER = "admin"
"""The approvers entry that lets the admin credential (the shared API token) decide."""

RiskTier = Literal["read", "write"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalSettings(_Strict):
    """How approvals behave."""

    four_eyes: bool = True
    """The requester may not approve their own request."""
    expires_in_seconds: int = Field(default=3600, gt=0)
    """A pending request older than this counts as rejected."""


class ApprovalRule(_Strict):
    """One rule: when it matches a tool call, it says whether approval is needed, and by whom."""

    name: str = ""
    """What the rule is for, shown in audit output."""
    tools: tuple[str, ...] = ()
    """Tool names it applies to; empty means any."""
    tiers: tuple[RiskTier, ...] = ()
    """Risk tiers it applies to; empty means any."""
    environments: tuple[str, ...] = ()
    """Values of the call's ``environment`` argument it applies to; empty means any."""
    channels: tuple[str, ...] = ()
    """Channels the request came from; empty means any."""
    requester_roles: tuple[str, ...] = ()
    """Roles the requester must hold for the rule to match; empty means anyone."""
    approval: Literal["required", "none"]
    """Whether a matching call needs a human's approval."""
    approvers: tuple[str, ...] = ("role:oncall",)
    """Who may approve: roles (``role:oncall``), people, principals (``slack:U123``), and
    ``"admin"`` where the shared API token (which speaks for no person) may decide too."""


class Person(_Strict):
    """One person and every principal they speak through."""

    principals: tuple[str, ...] = Field(min_length=1)
    """``channel:user_id`` names of the same person (``web:ann``, ``slack:U024BE7LH``…)."""

    @model_validator(mode="after")
    def _principals_are_principals(self) -> Person:
        for name in self.principals:
            channel, _, user = name.partition(":")
            if not channel or not user or channel.endswith("-group") or channel == "role":
                raise ValueError(f"{name!r} is not a principal (expected 'channel:user_id')")
        return self


class Schedule(_Strict):
    """Work that starts on a timer: a request an agent handles as if a person had sent it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    """The schedule's name (threads and idempotency keys carry it)."""
    text: str = Field(min_length=1)
    """The request, e.g. "what is running in production?"."""
    agent: str | None = None
    """The agent to run; the router picks one otherwise."""
    every_seconds: int | None = Field(default=None, ge=10)
    """Run every this many seconds…"""
    cron: str | None = Field(default=None, pattern=r"^\S+ \S+ \S+ \S+ \S+$")
    """…or on a five-field cron expression (minute hour day-of-month month day-of-week, UTC)."""

    @model_validator(mode="after")
    def _one_timer(self) -> Schedule:
        if (self.every_seconds is None) == (self.cron is None):
            raise ValueError("give exactly one of every_seconds and cron")
        return self


class Policy(_Strict):
    """A validated policy file."""

    version: Literal[1]
    """The policy format version."""
    approval: ApprovalSettings = ApprovalSettings()
    """Approval behaviour."""
    people: dict[str, Person] = Field(default_factory=dict)
    """People by name, each with all their principals; four-eyes and roles speak of people."""
    roles: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Role name to members: people by name, principals, or ``<channel>-group:<id>`` groups."""
    rules: tuple[ApprovalRule, ...] = ()
    """Approval rules, first match wins."""
    schedules: tuple[Schedule, ...] = ()
    """Scheduled triggers."""

    def person_of(self, principal: str) -> str:
        """The person a principal belongs to: their name, or the principal itself if unnamed."""
        return self._person_by_principal().get(principal, principal)

    def principals_of(self, person: str) -> set[str]:
        """Every principal of ``person`` (a name from ``[people]``, or a bare principal)."""
        known = self.people.get(person)
        return set(known.principals) if known else {person}

    def _person_by_principal(self) -> dict[str, str]:
        # Built each time (people are few): a cached index would go stale on model_copy.
        return {p: name for name, who in self.people.items() for p in who.principals}

    def principals_named(self, approvers: Iterable[str]) -> list[str]:
        """Every principal that ``approvers`` (roles, people, principals) names, in order.

        Platform groups are left out: their members are known only to the platform.
        """
        found: list[str] = []
        for who in approvers:
            if who == ADMIN_APPROVER:  # the admin credential: no principal to reach
                continue
            members = self.roles.get(who[5:], ()) if who.startswith("role:") else (who,)
            for member in members:
                if "-group:" not in member:
                    found += sorted(self.principals_of(member))
        return list(dict.fromkeys(found))

    def known_principals(self) -> set[str]:
        """Every principal the policy names, directly in a role or as one of a person's."""
        named = {p for who in self.people.values() for p in who.principals}
        members = {m for ms in self.roles.values() for m in ms}
        return named | {m for m in members if ":" in m and "-group:" not in m}

    def roles_of(self, who: Identity) -> set[str]:
        """The roles ``who`` holds: as a person (through any of their principals) or a group.

        The admin credential holds none: it is nobody's principal.
        """
        if who.principal == ADMIN.principal:
            return set()
        person = self.person_of(who.principal)
        names = {person} | self.principals_of(person) | {who.principal}
        names |= {f"{who.channel}-group:{g}" for g in who.groups}
        return {role for role, members in self.roles.items() if names & set(members)}

    def rule_for(
        self,
        *,
        tool: str,
        tier: RiskTier,
        environment: str | None,
        channel: str,
        requester: Identity | None,
        requesters: Iterable[Identity] = (),
    ) -> ApprovalRule:
        """The rule that decides a call; a fail-closed default when none matches.

        With several requesters, a rule's ``requester_roles`` match only roles that every one
        of them holds: a change several people led to is no more privileged than the least
        privileged of them.
        """
        everyone = [*requesters] or ([requester] if requester else [])
        requester_roles = set.intersection(*map(self.roles_of, everyone)) if everyone else set()
        for rule in self.rules:
            if (
                _matches(rule.tools, [tool])
                and _matches(rule.tiers, [tier])
                and _matches(rule.environments, [environment] if environment else [])
                and _matches(rule.channels, [channel])
                and _matches(rule.requester_roles, requester_roles)
            ):
                return rule
        if tier == "read":
            return ApprovalRule(name="default: reads are safe", approval="none")
        return ApprovalRule(name="default: unmatched changes need approval", approval="required")

    def may_decide(self, who: Identity, approvers: Iterable[str]) -> bool:
        """Whether ``who`` is one of ``approvers`` (by principal, person or role).

        The admin credential may decide only where the approvers name ``"admin"``.
        """
        allowed = set(approvers)
        if who.principal == ADMIN.principal:
            return ADMIN_APPROVER in allowed
        person = self.person_of(who.principal)
        if who.principal in allowed or person in allowed:
            return True
        return any(f"role:{role}" in allowed for role in self.roles_of(who))


def _matches(wanted: tuple[str, ...], actual: Iterable[str | None]) -> bool:
    return not wanted or any(value in wanted for value in actual)


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file (the bundled default when ``path`` is ``None``).

    Raises:
        ConfigError: the file is missing, not TOML, or not a valid policy; one line a problem.
    """
    path = path or DEFAULT_POLICY_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"policy file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy file {path}: not valid TOML ({exc})") from None
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError(f"policy file {path}:\n  " + "\n  ".join(lines)) from None
    named = {
        a.removeprefix("role:") for r in policy.rules for a in r.approvers if a.startswith("role:")
    }
    named |= {role for rule in policy.rules for role in rule.requester_roles}
    unknown = named - set(policy.roles)
    if unknown:
        raise ConfigError(f"policy file {path}: rules name undefined roles: {sorted(unknown)}")
    owners: dict[str, str] = {}
    for name, person in policy.people.items():
        if ":" in name:  # a person's name must never read as a principal or a role
            raise ConfigError(f"policy file {path}: person {name!r}: a name has no ':'")
        if name == ADMIN_APPROVER:  # "admin" in approvers means the admin credential
            raise ConfigError(f"policy file {path}: 'admin' is reserved; name the person otherwise")
        for principal in person.principals:
            if principal.startswith(f"{ADMIN.channel}:"):
                raise ConfigError(
                    f"policy file {path}: person {name!r}: {principal} is the admin credential,"
                    " which speaks for no person"
                )
            if owners.setdefault(principal, name) != name:
                raise ConfigError(
                    f"policy file {path}: {principal} belongs to both "
                    f"{owners[principal]!r} and {name!r}"
                )
    for role, members in policy.roles.items():
        for member in members:
            if member.startswith(f"{ADMIN.channel}:"):
                raise ConfigError(
                    f"policy file {path}: role {role!r} names {member!r}: the admin credential"
                    ' holds no role (name "admin" in a rule\'s approvers instead)'
                )
            if ":" not in member and member not in policy.people:
                raise ConfigError(
                    f"policy file {path}: role {role!r} names {member!r}, who is not in [people]"
                )
    return policy
