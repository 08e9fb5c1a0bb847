"""Reading a policy file and checking what a model cannot: names, escalation, the admin."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from bot.errors import ConfigError
from bot.events import ADMIN
from bot.policy import ADMIN_APPROVER, DEFAULT_POLICY_FILE, ApprovalRule, Policy, place_error

__all__ = ["load_policy"]


def _impossible(policy: Policy, rule: ApprovalRule) -> str | None:
    """Why nobody could ever satisfy ``rule``'s approvers, or ``None``.

    Only rules whose approvers are all people, principals and roles without platform groups
    (and not ``admin``) are checked: a group's members are known only to the platform.
    """
    if rule.approval != "required":
        return None
    wanted = max(rule.min_approvals, len(rule.approvers) if rule.mode == "all" else 1)
    if wanted == 1:
        return None
    people: set[str] = set()
    for who in rule.approvers:
        members = policy.roles.get(who[5:], ()) if who.startswith("role:") else (who,)
        if who == "admin" or any("-group:" in member for member in members):
            return None
        people |= {policy.person_of(member) for member in members}
    if len(people) < wanted:
        return (
            f"needs {wanted} different people to approve, but its approvers name only "
            f"{len(people)}: {', '.join(sorted(people)) or 'nobody'}"
        )
    return None


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
    asking = [rule for rule in policy.rules if rule.approval == "required"]
    named = {a.removeprefix("role:") for r in asking for a in r.approvers if a.startswith("role:")}
    named |= {role for rule in policy.rules for role in rule.requester_roles}
    steps = {step for rule in policy.rules for step in rule.escalate_to}
    named |= {s.removeprefix("role:") for s in steps if s.startswith("role:")}
    unknown = named - set(policy.roles)
    if unknown:
        raise ConfigError(f"policy file {path}: rules name undefined roles: {sorted(unknown)}")
    _check_escalation(path, policy, steps)
    for index, rule in enumerate(policy.rules):
        problem = _impossible(policy, rule)
        if problem:
            raise ConfigError(f"policy file {path}: rules.{index} ({rule.name!r}): {problem}")
    owners: dict[str, str] = {}
    for name, person in policy.people.items():
        if ":" in name:  # a person's name must never read as a principal or a role
            raise ConfigError(f"policy file {path}: person {name!r}: a name has no ':'")
        for principal in person.principals:
            if owners.setdefault(principal, name) != name:
                raise ConfigError(
                    f"policy file {path}: {principal} belongs to both "
                    f"{owners[principal]!r} and {name!r}"
                )
    _check_admin(path, policy)
    for role, members in policy.roles.items():
        for member in members:
            if ":" not in member and member not in policy.people:
                raise ConfigError(
                    f"policy file {path}: role {role!r} names {member!r}, who is not in [people]"
                )
    return policy


def _check_admin(path: Path, policy: Policy) -> None:
    """The admin credential is nobody: no person is called "admin" or holds its principal."""
    if ADMIN_APPROVER in policy.people:  # "admin" in approvers means the admin credential
        raise ConfigError(f"policy file {path}: 'admin' is reserved; name the person otherwise")
    admin = f"{ADMIN.channel}:"
    for name, person in policy.people.items():
        for principal in person.principals:
            if principal.startswith(admin):
                raise ConfigError(
                    f"policy file {path}: person {name!r}: {principal} is the admin credential,"
                    " which speaks for no person"
                )
    for role, members in policy.roles.items():
        for member in members:
            if member.startswith(admin):
                raise ConfigError(
                    f"policy file {path}: role {role!r} names {member!r}: the admin credential"
                    ' holds no role (name "admin" in a rule\'s approvers instead)'
                )


def _check_escalation(path: Path, policy: Policy, steps: set[str]) -> None:
    for step in sorted(steps):
        if ":" not in step and step not in policy.people:
            raise ConfigError(f"policy file {path}: escalate_to names {step!r}, who is not known")
    for key, places in policy.rooms.items():
        if key not in steps:
            raise ConfigError(f"policy file {path}: rooms.{key}: no escalate_to step names it")
        for place in places:
            if (problem := place_error(place)) is not None:
                raise ConfigError(f"policy file {path}: rooms.{key}: {problem}")
