"""The team's policy file: roles, approval rules and approver checks.

A policy is versioned TOML kept in the team's own repository (``OPSLOOP_POLICY_FILE``);
``bot/default_policy.toml`` ships as the default. Rules are tried in order and the first
match decides; a change that no rule matches needs approval (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.events import ADMIN, HumanRequested, Identity

__all__ = [
    "ADMIN_APPROVER",
    "DEFAULT_POLICY_FILE",
    "ApprovalRule",
    "Person",
    "Policy",
    "RiskTier",
    "Schedule",
    "default_rule",
    "escalation_due",
    "load_policy",
    "parse_duration",
    "place_error",
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
    where: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """What the call must touch, by the attributes its tool declares (``environment``,
    ``service``, ``resource``…): each key lists accepted values, glob patterns allowed
    (``"prod-*"``; ``"*"`` means any value, as long as the call declares the attribute). A
    call that does not declare an attribute named here does not match."""
    environments: tuple[str, ...] = ()
    """Shorthand for ``where.environment``."""
    channels: tuple[str, ...] = ()
    """Channels the request came from; empty means any."""
    requester_roles: tuple[str, ...] = ()
    """Roles the requester must hold for the rule to match; empty means anyone."""
    approval: Literal["required", "none"]
    """Whether a matching call needs a human's approval."""
    approvers: tuple[str, ...] = ("role:oncall",)
    """Who may approve: roles (``role:oncall``), people, principals (``slack:U123``), and
    ``"admin"`` where the shared API token (which speaks for no person) may decide too."""
    escalate_after: str | None = None
    """Undecided this long (``"15m"``, ``"2h"``, ``"90s"``), the request goes to the next
    step of ``escalate_to``; again after twice as long, and so on, until it expires."""
    escalate_to: tuple[str, ...] = ()
    """The escalation chain, one step each: roles, people or principals added as approvers."""
    notify: tuple[str, ...] = ()
    """Where the request is also asked, besides its thread: ``slack:#deploys``,
    ``slack:C0123`` (a channel), ``slack:U123`` (a DM), ``discord:<channel id>``,
    ``email:oncall@example.com``. The console always shows it."""

    mode: Literal["any", "all"] = "any"
    """``any``: an approval from anyone ``approvers`` names counts. ``all``: every entry of
    ``approvers`` must approve, each entry through a different person (``role:oncall`` and
    ``role:service-owner`` need one on-call person and one other, a service owner)."""
    min_approvals: int = Field(default=1, ge=1)
    """How many different people must approve. With ``mode = "all"`` both hold: every entry
    covered and at least this many people. A reject from any of them rejects at once."""

    @property
    def conditions(self) -> dict[str, tuple[str, ...]]:
        """``where`` with the ``environments`` shorthand folded in."""
        found = dict(self.where)
        if self.environments:
            found["environment"] = (*found.get("environment", ()), *self.environments)
        return found

    @property
    def allows_writes_blindly(self) -> bool:
        """Whether this rule would let any change run without naming what it allows.

        Such a rule never applies to a ``write`` call: a change runs without approval only
        where a rule names its tool or what it touches (fail closed): a rule written before
        a tool existed never lets it run unasked.
        """
        return self.approval == "none" and not self.tools and not self.conditions

    def matches(
        self,
        *,
        tool: str,
        tier: RiskTier,
        channel: str,
        roles: set[str],
        attributes: Mapping[str, str],
    ) -> bool:
        """Whether the rule applies to a call with these facts."""
        if tier == "write" and self.allows_writes_blindly:
            return False
        return (
            _matches(self.tools, [tool])
            and _matches(self.tiers, [tier])
            and _matches(self.channels, [channel])
            and _matches(self.requester_roles, roles)
            and all(
                key in attributes and any(fnmatchcase(attributes[key], p) for p in patterns)
                for key, patterns in self.conditions.items()
            )
        )

    @model_validator(mode="after")
    def _escalation_is_whole(self) -> ApprovalRule:
        if self.escalate_after is not None:
            parse_duration(self.escalate_after)
        if bool(self.escalate_after) != bool(self.escalate_to):
            raise ValueError("escalate_after and escalate_to go together")
        for place in self.notify:
            if (problem := place_error(place)) is not None:
                raise ValueError(f"notify: {problem}")
        return self


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_PLACES = {
    "slack": re.compile(r"#[a-z0-9][a-z0-9_-]{0,79}|[CGDUW][A-Z0-9]{2,}"),
    "discord": re.compile(r"\d{15,21}"),
    "email": re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"),
}


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``"15m"``, ``"2h"``, ``"90s"`` or ``"1h30m"``.

    Raises:
        ValueError: not such a duration, or zero.
    """
    found = _DURATION.fullmatch(text.strip())
    if not text.strip() or found is None:
        raise ValueError(f"{text!r} is not a duration (expected e.g. '90s', '15m', '2h', '1d')")
    days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return total


def escalation_due(request: HumanRequested, level: int) -> datetime | None:
    """When a request at escalation ``level`` (0: not yet) goes to its next step.

    That is ``escalate_after`` times the next level after the request was made, or ``None``
    when the chain is used up or the step would fall at or after the request's expiry.
    """
    if not request.escalate_after or level >= len(request.escalate_to):
        return None
    due = request.at + timedelta(seconds=parse_duration(request.escalate_after) * (level + 1))
    return due if due < request.expires_at else None


def place_error(place: str) -> str | None:
    """Why ``place`` is not somewhere a request can be posted, or ``None`` when it is."""
    channel, _, where = place.partition(":")
    pattern = _PLACES.get(channel)
    if pattern is None:
        return f"{place!r}: expected slack:#room, slack:C…/U…, discord:<channel id> or email:…"
    if not pattern.fullmatch(where):
        return f"{place!r} is not a {channel} place"
    return None


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
    rooms: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Where a request that escalates to a role, person or principal (the key, as an
    ``escalate_to`` step names it) is posted instead of each person's direct messages."""

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
        channel: str,
        requester: Identity | None,
        requesters: Iterable[Identity] = (),
        attributes: Mapping[str, str] | None = None,
    ) -> ApprovalRule:
        """The rule that decides a call; a fail-closed default when none matches.

        ``attributes`` are what the call touches, as its tool declares them (never read from
        an argument's name). A ``write`` call runs without approval only where a rule names
        its tool or what it touches; anything else needs approval.

        With several requesters, a rule's ``requester_roles`` match only roles that every one
        of them holds: a change several people led to is no more privileged than the least
        privileged of them.
        """
        everyone = [*requesters] or ([requester] if requester else [])
        requester_roles = set.intersection(*map(self.roles_of, everyone)) if everyone else set()
        for rule in self.rules:
            if rule.matches(
                tool=tool,
                tier=tier,
                channel=channel,
                roles=requester_roles,
                attributes=attributes or {},
            ):
                return rule
        return default_rule(tier)

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


READS_DEFAULT = ApprovalRule(name="default: reads are safe", approval="none")
WRITES_DEFAULT = ApprovalRule(name="default: unmatched changes need approval", approval="required")


def default_rule(tier: RiskTier) -> ApprovalRule:
    """The rule for a call no rule matches: reads run, changes need approval (fail closed)."""
    return READS_DEFAULT if tier == "read" else WRITES_DEFAULT


def _matches(wanted: tuple[str, ...], actual: Iterable[str | None]) -> bool:
    return not wanted or any(value in wanted for value in actual)


from bot._policy_load import load_policy  # noqa: E402  (it needs the models above)
