"""Config templates (this replaces confd): Jinja2 rendered in a ``SandboxedEnvironment`` with
``StrictUndefined``.

A missing variable is an error naming the template, the line and the variable; a template that
reaches for Python internals (``{{ ''.__class__.__mro__ }}``,
``{{ cycler.__init__.__globals__ }}``) stops with a sandbox error instead of rendering. Output
is capped at the config file limit, and HTML escaping is off (these are config files).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from typing import Any

from quayside.config.errors import SandboxViolation, TemplateError
from quayside.config.limits import MAX_FILE_BYTES

_UNDEFINED_RE = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE_RE = re.compile(r"has no attribute '([^']+)'$")


def _template_line(error: BaseException, name: str) -> int | None:
    """The line of template ``name`` the error was raised at (from Jinja's rewritten
    traceback, or a syntax error's own line)."""
    lineno = getattr(error, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == name]
    return frames[-1].lineno if frames else None


def render(name: str, source: str, variables: Mapping[str, Any]) -> str:
    """Render template ``source`` (called ``name`` in messages) with ``variables``.

    Args:
        name: the item address, for messages.
        source: the template text.
        variables: the environment's variables (plaintext values).

    Returns:
        The rendered text (a final newline kept as written).

    Raises:
        TemplateError: a syntax error, a missing variable or attribute (named, with its line),
            another runtime error, or output over the size limit.
        SandboxViolation: the template reached for something the sandbox forbids.
    """
    from jinja2 import FunctionLoader, StrictUndefined
    from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
    from jinja2.sandbox import SandboxedEnvironment

    environment = SandboxedEnvironment(
        loader=FunctionLoader(lambda _: (source, name, lambda: True)),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    try:
        output = environment.get_template(name).render(**dict(variables))
    except TemplateSyntaxError as e:
        raise TemplateError(
            name, f"syntax error: {e.message}", line=e.lineno, hint="fix the template"
        ) from None
    except SecurityError as e:
        raise SandboxViolation(
            name, f"refused by the sandbox: {e}", line=_template_line(e, name)
        ) from None
    except UndefinedError as e:
        text = str(e)
        line = _template_line(e, name)
        missing = _UNDEFINED_RE.match(text)
        if missing:
            variable = missing.group(1)
            raise TemplateError(
                name, f"variable '{variable}' is not defined", line=line, variable=variable
            ) from None
        attribute = _NO_ATTRIBUTE_RE.search(text)
        raise TemplateError(
            name,
            f"undefined value: {text}",
            line=line,
            variable=attribute.group(1) if attribute else None,
        ) from None
    except (ArithmeticError, TypeError, ValueError, LookupError) as e:
        raise TemplateError(
            name, f"{type(e).__name__}: {e}", line=_template_line(e, name), hint="fix the template"
        ) from None
    size = len(output.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        raise TemplateError(
            name,
            f"renders to {size} bytes, over the config file limit of {MAX_FILE_BYTES} bytes",
            hint="fix the template's loops",
        )
    return output


def variables_used(name: str, source: str) -> set[str]:
    """The names template ``source`` reads from its variables (Jinja's undeclared names: what
    the rendering depends on; a name it sets itself is not one).

    Raises:
        TemplateError: a syntax error (named with its line).
    """
    from jinja2 import meta
    from jinja2.exceptions import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    try:
        parsed = SandboxedEnvironment(autoescape=False).parse(source, name=name)
    except TemplateSyntaxError as e:
        raise TemplateError(
            name, f"syntax error: {e.message}", line=e.lineno, hint="fix the template"
        ) from None
    return set(meta.find_undeclared_variables(parsed))
