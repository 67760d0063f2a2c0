"""Templates render in Jinja2's sandbox with StrictUndefined: a missing variable names the
template, the line and the variable; reaching for Python internals fails with a clear error."""

from __future__ import annotations

import pytest

from quayside.config.errors import SandboxViolation, TemplateError
from quayside.config.limits import MAX_FILE_BYTES
from quayside.config.templates import render

NAME = "DNS/release/dnsmasq/dnsmasq.conf"


def test_renders_variables_loops_and_filters() -> None:
    source = "port={{ port }}\n{% for h in hosts.split(',') %}server={{ h | trim }}\n{% endfor %}"
    assert render(NAME, source, {"port": "53", "hosts": "a, b"}) == "port=53\nserver=a\nserver=b\n"


def test_no_html_escaping_and_final_newline_kept() -> None:
    assert render(NAME, "x={{ v }}\n", {"v": "<a&b>"}) == "x=<a&b>\n"


def test_a_missing_variable_names_template_line_and_variable() -> None:
    with pytest.raises(TemplateError) as failed:
        render(NAME, "port=53\n\nserver={{ upstream }}\n", {})
    error = failed.value
    assert (error.template, error.line, error.variable) == (NAME, 3, "upstream")
    assert str(error) == f"template {NAME}, line 3: variable 'upstream' is not defined"
    assert "quayside vars set" in (error.hint or "")


def test_a_missing_attribute_is_named_too() -> None:
    with pytest.raises(TemplateError, match="line 2: undefined value") as failed:
        render(NAME, "a\n{{ db.host }}\n", {"db": {}})
    assert failed.value.variable == "host"


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("{{ ''.__class__.__mro__ }}", 1),
        ("ok\n{{ cycler.__init__.__globals__ }}", 2),
        ("{{ ''.__class__.__base__.__subclasses__() }}", 1),
        ("{{ lipsum.__globals__ }}", 1),
        ("{{ joiner.__init__.__globals__['os'] }}", 1),
    ],
)
def test_the_sandbox_refuses_python_internals(source: str, line: int) -> None:
    with pytest.raises(SandboxViolation) as refused:
        render(NAME, source, {})
    assert refused.value.line == line
    assert str(refused.value).startswith(f"template {NAME}, line {line}: refused by the sandbox")
    assert "unsafe" in str(refused.value)


def test_syntax_errors_name_the_line() -> None:
    with pytest.raises(TemplateError, match=r"line 2: syntax error"):
        render(NAME, "a\n{% if %}\n", {})


def test_output_over_the_limit_is_refused() -> None:
    source = "{% for i in range(100000) %}" + "x" * 20 + "{% endfor %}"
    with pytest.raises(TemplateError, match=f"over the config file limit of {MAX_FILE_BYTES}"):
        render(NAME, source, {})
