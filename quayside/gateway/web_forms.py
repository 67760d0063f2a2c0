"""Reading the config pages' form posts (``application/x-www-form-urlencoded``), without a
multipart parser: the pages only post small text forms, and the gateway's middleware has
already bounded the body's size and read time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import parse_qs

from starlette.requests import Request

from quayside.errors import InputError

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 50


class Form(Mapping[str, str]):
    """A posted form: each field's first value (a repeated field keeps its first)."""

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields

    def __getitem__(self, key: str) -> str:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def text(self, name: str, default: str = "") -> str:
        """Field ``name`` as text (``default`` when absent)."""
        return self._fields.get(name, default)

    def number(self, name: str, *, label: str | None = None) -> int:
        """Field ``name`` as a non-negative whole number.

        Raises:
            InputError: absent or not a number, naming the field.
        """
        raw = self._fields.get(name, "").strip()
        if not raw.isdigit() or len(raw) > 12:
            raise InputError(f"{label or name}: expected a version number, got {raw[:20]!r}")
        return int(raw)

    def flag(self, name: str) -> bool:
        """Whether checkbox ``name`` was ticked."""
        return name in self._fields


def parse_form(body: bytes, content_type: str | None) -> Form:
    """The fields of a urlencoded form body.

    Raises:
        InputError: another content type, text that is not UTF-8, or too many fields.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != FORM_TYPE:
        raise InputError(f"the form must be sent as {FORM_TYPE}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the form is not UTF-8 text") from None
    try:
        parsed = parse_qs(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InputError("the form is not UTF-8 text") from None
    except ValueError:
        raise InputError(f"the form has more than {MAX_FIELDS} fields") from None
    # browsers send newlines in a textarea as CRLF; config files keep the LF the editor showed
    return Form({k: v[0].replace("\r\n", "\n") for k, v in parsed.items()})


async def read_form(request: Request) -> Form:
    """The posted form of ``request``.

    Raises:
        InputError: see :func:`parse_form`.
    """
    return parse_form(await request.body(), request.headers.get("content-type"))
