"""parse_mapping: JSON or Python-literal dicts only; nothing is ever evaluated."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from quayside.errors import InputError
from quayside.triggers import literal
from quayside.triggers.literal import parse_mapping
from testbed import PROJECT_DIR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{'TAG': 'v1'}", {"TAG": "v1"}),
        ("{1: '172.16.0.101'}", {1: "172.16.0.101"}),
        ('{"TAG": "v1", "N": 3}', {"TAG": "v1", "N": 3}),
        ("{'group-1': ['杨红飞']}", {"group-1": ["杨红飞"]}),
        ("{'a': (1, -2, -3.5), 'b': None, 'c': True}", {"a": [1, -2, -3.5], "b": None, "c": True}),
        ("  {'a': 1}\n", {"a": 1}),
        ("", {}),
        ("   ", {}),
        ("{}", {}),
    ],
)
def test_accepts_literals(text: str, expected: dict[object, object]) -> None:
    assert parse_mapping(text, "args") == expected


def test_accepts_dicts_and_none() -> None:
    assert parse_mapping({"TAG": "v1", "L": ("a", "b")}, "args") == {"TAG": "v1", "L": ["a", "b"]}
    assert parse_mapping(None, "hosts") == {}


def test_result_is_a_copy() -> None:
    given = {"a": [1]}
    parsed = parse_mapping(given, "args")
    assert parsed == given and parsed is not given


MALICIOUS = [
    "__import__('os').system('touch {marker}')",
    "{'a': __import__('os').system('touch {marker}')}",
    "{'a': open('{marker}', 'w')}",
    "{'a': (lambda: __import__('os').system('touch {marker}'))()}",
    "{'a': lambda: 1}",
    "{'a': f'{{__import__(\"os\").system(\"touch {marker}\")}}'}",
    "{'a': os.name}",
    "{'a': ().__class__.__bases__[0].__subclasses__()}",
    "{'a': [x for x in range(3)]}",
    "{'a': 1 + 2}",
    "{'a': 10 ** 100000}",
    "{'a': 'x' * 100000}",
    "{'a': not 1}",
    "{'a': +1}",
    "{'a': -'x'}",
    "{'a': name}",
    "{'a': (yield)}",
    "{'a': b'bytes'}",
    "{'a': ...}",
    "{'a': 1j}",
    "{'a': {1, 2}}",
    "{'a': {'nested': 1}}",
    "{'a': [[1]]}",
    "{'a': [{'b': 1}]}",
    "{**{'a': 1}}",
    "{(1, 2): 'tuple key'}",
    "{True: 1}",
    "{'a': 1, 'a': 2}",
    "{1: 'a', 1: 'b'}",
    "{'a': 1e999}",
    '{"a": NaN}',
    '{"a": Infinity}',
    '{"a": 1, "a": 2}',
    "['a', 'b']",
    "'just a string'",
    "1",
    "{'a': 1",
    "{'a': 1}; import os",
    "{'a': 1} if True else 0",
    "{'a': print('x')}",
]


@pytest.mark.parametrize("template", MALICIOUS)
def test_rejects_and_never_evaluates(template: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = template.replace("{marker}", str(marker))
    with pytest.raises(InputError) as exc:
        parse_mapping(text, "args")
    assert str(exc.value).startswith("args: ")
    assert "JSON object or a Python dict literal" in str(exc.value)
    assert not marker.exists()


def test_error_does_not_echo_input() -> None:
    with pytest.raises(InputError) as exc:
        parse_mapping("{'a': __import__('os').getcwd()}", "hosts")
    assert "__import__" not in str(exc.value)
    assert str(exc.value).startswith("hosts: ")


@pytest.mark.parametrize(
    "value",
    [
        "{'a': '" + "x" * (literal.MAX_TEXT_CHARS + 1) + "'}",
        "{" + ", ".join(f"'k{i}': {i}" for i in range(literal.MAX_ENTRIES + 1)) + "}",
        "{'a': [" + ", ".join(["1"] * (literal.MAX_LIST_ITEMS + 1)) + "]}",
        "{'a': '" + "x" * (literal.MAX_VALUE_CHARS + 1) + "'}",
        "{'" + "k" * (literal.MAX_KEY_CHARS + 1) + "': 1}",
        "{'a': " + "[" * 5000 + "]" * 5000 + "}",
        "[" * 100_000,
        "{'a': " + "(" * 5000 + "1" + ")" * 5000 + "}",
        "{'a': " + "9" * 5000 + "}",
        "{'a': " + "-" * 5000 + "1}",
    ],
    ids=[
        "long-text",
        "entries",
        "list-items",
        "value",
        "key",
        "nesting",
        "brackets",
        "parens",
        "huge-int",
        "minus-chain",
    ],
)
def test_size_limits_and_bombs(value: str) -> None:
    with pytest.raises(InputError):
        parse_mapping(value, "args")


@pytest.mark.parametrize(
    "value",
    [
        {"a": {"b": 1}},
        {("t",): 1},
        {True: 1},
        {"a": object()},
        {"a": float("nan")},
        {"a": b"x"},
        ["a"],
        42,
        b"{}",
    ],
)
def test_rejects_bad_python_values(value: object) -> None:
    with pytest.raises(InputError):
        parse_mapping(value, "args")


def test_literal_eval_only_sees_checked_trees(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ast.AST] = []
    real = ast.literal_eval

    def spy(node: object) -> object:
        assert isinstance(node, ast.Expression)
        seen.append(node)
        return real(node)

    monkeypatch.setattr(literal.ast, "literal_eval", spy)
    with pytest.raises(InputError):
        parse_mapping("{'a': __import__('os')}", "args")
    assert seen == []
    assert parse_mapping("{'a': 1}", "args") == {"a": 1}
    assert len(seen) == 1


def test_no_eval_or_exec_in_triggers_and_auth() -> None:
    root = PROJECT_DIR / "quayside"
    for path in [*(root / "triggers").rglob("*.py"), *(root / "auth").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile"}, path


def test_many_groups_of_hosts_within_limits() -> None:
    text = str({g: [f"10.0.{g}.{i}" for i in range(10)] for g in range(60)})
    assert len(text) < literal.MAX_TEXT_CHARS
    parsed = parse_mapping(text, "hosts")
    assert len(parsed) == 60 and parsed[59] == [f"10.0.59.{i}" for i in range(10)]
