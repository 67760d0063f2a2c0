"""Chat command grammar: Chinese and English, normalisation, validation, help on failure."""

from __future__ import annotations

import pytest

from quayside.triggers.chat import (
    HELP_TEXT,
    Approve,
    Command,
    Deploy,
    Help,
    Rollback,
    Status,
    normalise,
    parse_command,
)
from quayside.triggers.errors import ParseError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("执行dev环境web流水线", Deploy("web", "dev")),
        ("执行 dev 环境 web 流水线 v1.2", Deploy("web", "dev", "v1.2")),
        ("执行dev环境devops-chatops流水线", Deploy("devops-chatops", "dev")),
        ("发布 web 到 prod v1.2", Deploy("web", "prod", "v1.2")),
        ("发布web到prod", Deploy("web", "prod")),
        ("部署 api 到 staging release/2024.1", Deploy("api", "staging", "release/2024.1")),
        ("回滚 web prod", Rollback("web", "prod")),
        ("回滚 web prod 到 r12", Rollback("web", "prod", "r12")),
        ("回滚 web prod r12", Rollback("web", "prod", "r12")),
        ("审批 4f1c-9a 通过", Approve("4f1c-9a")),
        ("审批 4f1c-9a 拒绝 版本号不对", Approve("4f1c-9a", reject=True, comment="版本号不对")),
        ("审批 4f1c-9a同意", Approve("4f1c-9a")),
        ("审批 abc 驳回", Approve("abc", reject=True)),
        ("状态 web prod", Status("web", "prod")),
        ("状态 web", Status("web")),
        ("帮助", Help()),
        ("deploy web to dev", Deploy("web", "dev")),
        ("Deploy web to dev v1.2.3", Deploy("web", "dev", "v1.2.3")),
        ("rollback web prod", Rollback("web", "prod")),
        ("rollback web prod to 20240101-1", Rollback("web", "prod", "20240101-1")),
        (
            "approve 0b5e6f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            Approve("0b5e6f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
        ),
        ("approve r1 looks good to me", Approve("r1", comment="looks good to me")),
        ("REJECT r1 wrong tag", Approve("r1", reject=True, comment="wrong tag")),
        ("status web", Status("web")),
        ("status web prod", Status("web", "prod")),
        ("help", Help()),
        ("HELP", Help()),
        ("?", Help()),
        # full-width characters, mentions, extra spaces
        ("？", Help()),
        ("ｄｅｐｌｏｙ　ｗｅｂ　ｔｏ　ｄｅｖ", Deploy("web", "dev")),
        ("执行　ｄｅｖ　环境　ｗｅｂ　流水线　ｖ１．２", Deploy("web", "dev", "v1.2")),
        ("@Quayside 执行dev环境web流水线", Deploy("web", "dev")),
        ("  @机器人  @Quayside   status    web  ", Status("web")),
        (" 你好".replace("你好", "帮助"), Help()),
    ],
)
def test_commands(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


def test_robot_name_removed_anywhere() -> None:
    assert parse_command("deploy web to dev @Quayside", robot_name="Quayside") == Deploy(
        "web", "dev"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty message"),
        ("   ", "empty message"),
        ("@Quayside", "empty message"),
        ("你好", "not a command"),
        ("deploy web", "not a command"),
        ("deploy web to", "not a command"),
        ("执行dev环境流水线", "not a command"),
        ("回滚 web", "not a command"),
        ("审批 abc", "not a command"),
        ("deploy we$b to dev", "app name 'we$b' is not valid"),
        ("deploy web to dev;rm", "environment name 'dev;rm' is not valid"),
        ("deploy web to dev --upload-pack=x", "ref '--upload-pack=x' is not valid"),
        ("deploy web to dev ../../etc", "ref '../../etc' is not valid"),
        ("执行dev环境我的应用流水线", "app name '我的应用' is not valid"),
        ("rollback web prod to $(id)", "release '$(id)' is not valid"),
        ("approve ../x", "run id '../x' is not valid"),
        ("status " + "a" * 65, "app name"),
        ("deploy web to dev v1 extra", "not a command"),
        ("approve r1 " + "x" * 501, "comment is longer"),
        ("help " + "x" * 1000, "longer than 1000"),
    ],
)
def test_rejected_with_help(text: str, fragment: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_command(text)
    assert fragment in str(exc.value)
    assert exc.value.help_text == HELP_TEXT
    assert exc.value.hint == HELP_TEXT


def test_help_is_bilingual() -> None:
    assert "执行dev环境web流水线" in HELP_TEXT and "deploy web to dev" in HELP_TEXT
    assert "回滚" in HELP_TEXT and "rollback" in HELP_TEXT
    assert "审批" in HELP_TEXT and "approve" in HELP_TEXT and "reject" in HELP_TEXT
    assert "状态" in HELP_TEXT and "status" in HELP_TEXT


def test_normalise() -> None:
    assert normalise("＠Ｑｕａｙｓｉｄｅ　ｈｅｌｐ\u200b") == "help"
    assert normalise("a\t b\n c") == "a b c"
