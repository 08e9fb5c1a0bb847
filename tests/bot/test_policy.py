"""The policy file: who approves what, role membership, and load errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.events import ADMIN, Identity
from bot.policy import DEFAULT_POLICY_FILE, ApprovalRule, Policy, load_policy

DEV = Identity(channel="cli", user_id="dev-1")
ONCALL = Identity(channel="cli", user_id="oncall-1")
STRANGER = Identity(channel="slack", user_id="U999")


def rule(
    policy: Policy, *, tool="deploy", tier="write", environment=None, channel="cli", requester=DEV
) -> ApprovalRule:
    return policy.rule_for(
        tool=tool,
        tier=tier,
        channel=channel,
        requester=requester,
        attributes={"environment": environment} if environment else {},
    )


# ---------------------------------------------------------------- the default policy


def test_default_policy_is_the_bundled_file(policy):
    assert load_policy(DEFAULT_POLICY_FILE) == policy
    assert policy.version == 1
    assert policy.approval.four_eyes is True
    assert policy.approval.expires_in_seconds == 3600
    assert "oncall-1" in policy.roles["oncall"]
    assert policy.principals_of("oncall-1") == {"cli:oncall-1", "web:oncall-1"}


@pytest.mark.parametrize("tool", ["deploy", "restart", "rollback"])
def test_production_changes_need_oncall_approval(policy, tool):
    decided = rule(policy, tool=tool, environment="production")

    assert decided.approval == "required"
    assert decided.approvers == ("role:oncall",)
    assert decided.name == "production changes need on-call approval"


@pytest.mark.parametrize("requester", [DEV, ONCALL, None], ids=["dev", "oncall", "nobody"])
def test_production_approval_does_not_depend_on_who_asks(policy, requester):
    assert rule(policy, environment="production", requester=requester).approval == "required"


@pytest.mark.parametrize("tool", ["deploy", "restart", "rollback"])
def test_staging_changes_run_without_approval(policy, tool):
    decided = rule(policy, tool=tool, environment="staging")

    assert decided.approval == "none"
    assert decided.name == "changes outside production run at once"


@pytest.mark.parametrize("environment", ["production", "staging", None])
@pytest.mark.parametrize("tool", ["list_services", "service_status", "recent_deploys"])
def test_reads_never_need_approval(policy, tool, environment):
    assert rule(policy, tool=tool, tier="read", environment=environment).approval == "none"


# ---------------------------------------------------------------- rule matching


def test_unmatched_write_is_fail_closed():
    only_staging = Policy(
        version=1,
        rules=(ApprovalRule(name="staging is free", environments=("staging",), approval="none"),),
    )

    decided = rule(only_staging, environment="production")

    assert decided.approval == "required"
    assert decided.approvers == ("role:oncall",)
    assert decided.name == "default: unmatched changes need approval"


def test_unmatched_read_is_allowed():
    decided = rule(Policy(version=1), tool="service_status", tier="read")

    assert decided.approval == "none"
    assert decided.name == "default: reads are safe"


def test_write_without_environment_does_not_match_an_environment_rule():
    prod_only = Policy(
        version=1,
        rules=(ApprovalRule(environments=("production",), approval="none"),),
    )

    assert rule(prod_only, environment=None).approval == "required"


def test_first_matching_rule_wins():
    policy = Policy(
        version=1,
        rules=(
            ApprovalRule(name="first", tools=("deploy",), approval="none"),
            ApprovalRule(name="second", approval="required"),
        ),
    )

    assert rule(policy, tool="deploy").name == "first"
    assert rule(policy, tool="restart").name == "second"


def test_rule_can_match_on_channel():
    policy = Policy(
        version=1,
        rules=(
            ApprovalRule(
                name="cli is trusted", tools=("deploy",), channels=("cli",), approval="none"
            ),
        ),
    )

    assert rule(policy, channel="cli").approval == "none"
    assert rule(policy, channel="slack").approval == "required"


def test_a_rule_that_allows_changes_without_naming_them_never_lets_a_change_run():
    """Fail closed: a rule written before a tool existed must not let the new tool run unasked."""
    policy = Policy(
        version=1,
        rules=(
            ApprovalRule(name="blind", channels=("cli",), approval="none"),
            ApprovalRule(name="named", tools=("restart",), channels=("cli",), approval="none"),
            ApprovalRule(name="touching", where={"environment": ("dev-*",)}, approval="none"),
        ),
    )

    assert rule(policy, tool="purge_cache").name == "default: unmatched changes need approval"
    assert rule(policy, tool="purge_cache", tier="read").name == "blind"
    assert rule(policy, tool="restart").name == "named"
    assert rule(policy, tool="purge_cache", environment="dev-eu").name == "touching"
    assert rule(policy, tool="purge_cache", environment="prod-eu").approval == "required"


def test_where_matches_only_calls_that_declare_the_attribute():
    policy = Policy(
        version=1,
        rules=(ApprovalRule(name="any env", where={"environment": ("*",)}, approval="none"),),
    )

    assert rule(policy, environment="production").name == "any env"
    assert rule(policy, environment=None).approval == "required"


def test_rule_can_match_on_requester_role():
    policy = Policy(
        version=1,
        roles={"oncall": ("cli:oncall-1",)},
        rules=(
            ApprovalRule(
                name="oncall self-serve",
                tools=("deploy",),
                requester_roles=("oncall",),
                approval="none",
            ),
        ),
    )

    assert rule(policy, requester=ONCALL).approval == "none"
    assert rule(policy, requester=DEV).approval == "required"
    assert rule(policy, requester=None).approval == "required"


# ---------------------------------------------------------------- may_decide


def test_may_decide_by_principal(policy):
    assert policy.may_decide(STRANGER, ["slack:U999"]) is True
    assert policy.may_decide(STRANGER, ["slack:U998", "role:oncall"]) is False


def test_may_decide_needs_the_same_channel(policy):
    # The same user id on another channel is another person.
    assert policy.may_decide(Identity(channel="web", user_id="U999"), ["slack:U999"]) is False


def test_may_decide_by_role(policy):
    assert policy.may_decide(ONCALL, ["role:oncall"]) is True
    assert policy.may_decide(DEV, ["role:oncall"]) is False
    assert policy.may_decide(DEV, ["role:developer"]) is True


def test_may_decide_ignores_display_name_and_email(policy):
    impostor = Identity(
        channel="cli", user_id="dev-9", display_name="oncall-1", email="oncall-1@example.com"
    )

    assert policy.may_decide(impostor, ["role:oncall", "cli:oncall-1"]) is False


def test_may_decide_by_platform_group():
    policy = Policy(version=1, roles={"oncall": ("slack-group:S1",)})
    in_group = Identity(channel="slack", user_id="U1", groups=("S0", "S1"))
    outside = Identity(channel="slack", user_id="U2", groups=("S2",))
    other_platform = Identity(channel="discord", user_id="U3", groups=("S1",))

    assert policy.roles_of(in_group) == {"oncall"}
    assert policy.may_decide(in_group, ["role:oncall"]) is True
    assert policy.may_decide(outside, ["role:oncall"]) is False
    assert policy.may_decide(other_platform, ["role:oncall"]) is False


def test_roles_of_collects_every_role(policy):
    both = Policy(version=1, roles={"oncall": ("cli:a",), "developer": ("cli:a", "cli:b")})

    assert both.roles_of(Identity(channel="cli", user_id="a")) == {"oncall", "developer"}
    assert both.roles_of(Identity(channel="cli", user_id="c")) == set()


def test_a_bare_role_name_is_not_a_role_approver(policy):
    # Approvers name roles as "role:NAME"; a bare "oncall" is a (nonexistent) principal.
    assert policy.may_decide(ONCALL, ["oncall"]) is False


# ---------------------------------------------------------------- load_policy errors


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(content, encoding="utf-8")
    return path


def test_load_policy_reads_a_team_file(tmp_path):
    path = write(
        tmp_path,
        """
        version = 1
        [approval]
        four_eyes = false
        expires_in_seconds = 60
        [roles]
        sre = ["slack:U1", "slack-group:S1"]
        [[rules]]
        name = "everything needs sre"
        approval = "required"
        approvers = ["role:sre"]
        """,
    )

    policy = load_policy(path)

    assert policy.approval.four_eyes is False
    assert policy.approval.expires_in_seconds == 60
    assert rule(policy, tier="read").approvers == ("role:sre",)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"

    with pytest.raises(ConfigError) as caught:
        load_policy(path)

    assert str(caught.value) == f"policy file {path}: No such file or directory"


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "version = = 1\n")

    with pytest.raises(ConfigError) as caught:
        load_policy(path)

    message = str(caught.value)
    assert message.startswith(f"policy file {path}: not valid TOML (")
    assert "line 1" in message
    assert "\n" not in message


def test_not_utf8(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_bytes(b"version = 1\nname = '\xff'\n")

    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy(path)


def test_wrong_version(tmp_path):
    path = write(tmp_path, "version = 2\n")

    with pytest.raises(ConfigError) as caught:
        load_policy(path)

    assert str(caught.value) == f"policy file {path}:\n  version: Input should be 1"


def test_missing_version(tmp_path):
    path = write(tmp_path, "[roles]\noncall = []\n")

    with pytest.raises(ConfigError) as caught:
        load_policy(path)

    assert str(caught.value) == f"policy file {path}:\n  version: Field required"


def test_unknown_field_is_named_with_its_location(tmp_path):
    path = write(
        tmp_path,
        'version = 1\n[[rules]]\napproval = "none"\nenvironment = ["production"]\n',
    )

    with pytest.raises(ConfigError) as caught:
        load_policy(path)

    assert str(caught.value) == (
        f"policy file {path}:\n  rules.0.environment: Extra inputs are not permitted"
    )


def test_every_problem_gets_one_line(tmp_path):
    path = write(
        tmp_path,
        'version = 3\ncolour = "red"\n[approval]\nexpires_in_seconds = 0\n'
        '[[rules]]\napproval = "maybe"\n',
    )

    with pytest.raises(ConfigError) as caught:
        load_policy(path)

    lines = str(caught.value).splitlines()
    assert lines[0] == f"policy file {path}:"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
        "approval.expires_in_seconds",
        "colour",
        "rules.0.approval",
        "version",
    ]
    assert all(line.startswith("  ") for line in lines[1:])


def test_rule_naming_an_undefined_role(tmp_path):
    path = write(
        tmp_path,
        'version = 1\n[roles]\noncall = ["cli:a"]\n'
        '[[rules]]\napproval = "required"\napprovers = ["role:sre", "role:oncall", "role:dba"]\n',
    )

    with pytest.raises(ConfigError) as caught:
        load_policy(path)

    assert str(caught.value) == (f"policy file {path}: rules name undefined roles: ['dba', 'sre']")


def test_default_approvers_need_an_oncall_role(tmp_path):
    # A rule that names no approvers gets role:oncall, which the file must then define.
    path = write(tmp_path, 'version = 1\n[[rules]]\napproval = "required"\n')

    with pytest.raises(ConfigError, match=r"undefined roles: \['oncall'\]"):
        load_policy(path)


# ---------------------------------------------------------------- people


def test_a_person_holds_their_roles_through_every_principal(policy):
    for principal in ("cli:oncall-1", "web:oncall-1"):
        who = Identity(channel=principal.split(":")[0], user_id="oncall-1")
        assert policy.person_of(who.principal) == "oncall-1"
        assert policy.roles_of(who) == {"oncall"}
        assert policy.may_decide(who, ["role:oncall"]) is True
    assert policy.person_of("slack:U999") == "slack:U999"  # unnamed: the principal alone
    assert policy.principals_named(["role:oncall"]) == [
        "cli:oncall-1",
        "web:oncall-1",
        "cli:oncall-2",
        "web:oncall-2",
    ]


def test_the_least_privileged_requester_decides_requester_roles():
    policy = Policy.model_validate(
        {
            "version": 1,
            "people": {"ann": {"principals": ["web:ann"]}, "bob": {"principals": ["web:bob"]}},
            "roles": {"oncall": ["ann"]},
            "rules": [
                {
                    "requester_roles": ["oncall"],
                    "tools": ["deploy"],
                    "tiers": ["write"],
                    "approval": "none",
                },
            ],
        }
    )
    ann, bob = Identity(channel="web", user_id="ann"), Identity(channel="web", user_id="bob")
    alone = policy.rule_for(tool="deploy", tier="write", channel="web", requester=ann)
    together = policy.rule_for(
        tool="deploy",
        tier="write",
        channel="web",
        requester=ann,
        requesters=[ann, bob],
    )
    assert alone.approval == "none"
    assert together.approval == "required"


@pytest.mark.parametrize(
    ("people", "roles", "error"),
    [
        (
            {"a": {"principals": ["web:x"]}, "b": {"principals": ["web:x"]}},
            {},
            "belongs to both",
        ),
        ({}, {"oncall": ["nobody"]}, "not in \\[people\\]"),
        ({"a": {"principals": ["role:oncall"]}}, {}, "not a principal"),
        ({"a": {"principals": []}}, {}, "at least 1"),
        ({'"slack:U1"': {"principals": ["web:x"]}}, {}, "a name has no ':'"),
    ],
)
def test_people_mistakes_stop_loading(tmp_path, people, roles, error):
    import json

    lines = ["version = 1", "[roles]"]
    lines += [f"{name} = {json.dumps(members)}" for name, members in roles.items()]
    for name, person in people.items():
        lines += [f"[people.{name}]", f"principals = {json.dumps(person['principals'])}"]
    path = tmp_path / "policy.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=error):
        load_policy(path)


def test_the_readme_policy_example_loads_and_does_what_the_readme_says(tmp_path):
    """The README's policy example is a valid policy with the behaviour the text promises."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Policy", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "policy.toml"
    path.write_text(example)
    policy = load_policy(path)
    dev = Identity(channel="discord", user_id="80351110224678912")
    assert policy.person_of(dev.principal) == "dev-1"
    staging = policy.rule_for(
        tool="restart",
        tier="write",
        attributes={"environment": "staging"},
        channel="discord",
        requester=dev,
    )
    production = policy.rule_for(
        tool="restart",
        tier="write",
        attributes={"environment": "production"},
        channel="discord",
        requester=dev,
    )
    assert (staging.approval, production.approval) == ("none", "required")
    assert policy.may_decide(Identity(channel="slack", user_id="U024BE7LH"), ["role:oncall"])


# ---------------------------------------------------------------- the admin credential


def test_admin_decides_only_where_the_approvers_name_admin(policy):
    production = rule(policy, environment="production")
    assert "admin" not in production.approvers
    assert not policy.may_decide(ADMIN, production.approvers)
    assert policy.may_decide(ADMIN, ("role:oncall", "admin"))
    # A person is never admin by being named "admin" in approvers.
    assert not policy.may_decide(DEV, ("admin",))
    assert not policy.may_decide(Identity(channel="web", user_id="admin"), ("admin",))


def test_admin_holds_no_role_even_where_a_role_names_it(policy):
    loose = policy.model_copy(update={"roles": {"oncall": ("admin:admin", "oncall-1")}})
    assert loose.roles_of(ADMIN) == set()
    assert not loose.may_decide(ADMIN, ("role:oncall",))


def test_load_policy_accepts_admin_in_approvers(tmp_path):
    path = write(
        tmp_path,
        """
version = 1
[roles]
oncall = ["slack:U1"]
[[rules]]
name = "break-glass"
tiers = ["write"]
approval = "required"
approvers = ["role:oncall", "admin"]
""",
    )
    loaded = load_policy(path)
    assert loaded.rules[0].approvers == ("role:oncall", "admin")
    assert loaded.principals_named(loaded.rules[0].approvers) == ["slack:U1"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('[people.admin]\nprincipals = ["web:admin"]\n', "'admin' is reserved"),
        ('[people.ann]\nprincipals = ["admin:admin"]\n', "speaks for no person"),
        ('[roles]\noncall = ["admin:admin"]\n', "holds no role"),
    ],
)
def test_load_policy_refuses_admin_as_a_person(tmp_path, content, why):
    with pytest.raises(ConfigError, match=why):
        load_policy(write(tmp_path, "version = 1\n" + content))


# ---------------------------------------------------------------- several approvers

SEVERAL = """
version = 1
[people.ann]
principals = ["cli:ann", "slack:UANN"]
[people.bob]
principals = ["cli:bob"]
[people.cy]
principals = ["cli:cy"]
[roles]
oncall = ["ann", "bob"]
owner = ["cy"]
groupy = ["slack-group:S1"]
"""


def test_a_rule_defaults_to_one_approval_from_any_approver():
    plain = ApprovalRule(approval="required")
    assert (plain.mode, plain.min_approvals) == ("any", 1)


def test_mode_and_min_approvals_are_read_from_the_file(tmp_path):
    path = write(
        tmp_path,
        SEVERAL
        + """
        [[rules]]
        name = "two on-call and an owner"
        approval = "required"
        approvers = ["role:oncall", "role:owner"]
        mode = "all"
        min_approvals = 3
        """,
    )
    decided = rule(load_policy(path))
    assert (decided.mode, decided.min_approvals) == ("all", 3)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ('mode = "some"', "mode"),
        ("min_approvals = 0", "min_approvals"),
    ],
)
def test_bad_approval_forms_are_refused(tmp_path, fields, error):
    path = write(
        tmp_path,
        SEVERAL + f'[[rules]]\napproval = "required"\napprovers = ["role:oncall"]\n{fields}\n',
    )
    with pytest.raises(ConfigError, match=rf"rules\.0\.{error}"):
        load_policy(path)


@pytest.mark.parametrize(
    ("approvers", "fields", "error"),
    [
        # ann and bob are two people, however many principals they have.
        ('["role:oncall"]', "min_approvals = 3", "needs 3 different people.*only 2: ann, bob"),
        # The same person named twice is still one person.
        ('["cli:ann", "slack:UANN"]', 'mode = "all"', "needs 2 different people.*only 1: ann"),
        ('["role:oncall", "cli:bob", "role:owner"]', "min_approvals = 4", "only 3"),
    ],
)
def test_rules_nobody_could_satisfy_are_refused(tmp_path, approvers, fields, error):
    path = write(
        tmp_path,
        SEVERAL
        + f'[[rules]]\nname = "x"\napproval = "required"\napprovers = {approvers}\n{fields}\n',
    )
    with pytest.raises(ConfigError, match=error):
        load_policy(path)


@pytest.mark.parametrize(
    ("approvers", "fields"),
    [
        ('["role:oncall"]', "min_approvals = 2"),
        ('["role:oncall", "role:owner"]', 'mode = "all"\nmin_approvals = 3'),
        # A platform group's members are known only to the platform: not checked.
        ('["role:groupy"]', "min_approvals = 5"),
    ],
)
def test_rules_that_enough_people_can_satisfy_load(tmp_path, approvers, fields):
    path = write(
        tmp_path,
        SEVERAL + f'[[rules]]\napproval = "required"\napprovers = {approvers}\n{fields}\n',
    )
    assert load_policy(path).rules[0].approvers


def test_the_default_policy_examples_of_several_approvers_load(tmp_path):
    # The commented examples in the bundled file, uncommented, are valid policy.
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    lines = text[text.index("# Several approvers") :].splitlines()
    start = lines.index("# [[rules]]")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("#"))
    example = "\n".join(line.removeprefix("#").removeprefix(" ") for line in lines[start:end])
    loaded = load_policy(write(tmp_path, text + "\n" + example))
    forms = {(r.mode, r.min_approvals) for r in loaded.rules}
    assert {("any", 2), ("all", 1)} <= forms
