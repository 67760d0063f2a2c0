"""The Prefect UI's own Markdown lexer, run through Node: what a description or an artifact
really turns into in the browser (tables and their cells, links, images, raw HTML).

The UI lexes Markdown in a web worker (``marked`` with ``gfm`` and ``breaks``) whose source is
a string in the UI bundle shipped with the ``prefect`` package; :func:`ui_markdown` runs that
worker unchanged under Node and summarises the tokens. Tests that use it are skipped when Node
or the bundle is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_NODE_SCRIPT = r"""
const fs = require('fs');
const bundle = fs.readFileSync(process.argv[1], 'utf8');
const starts = /='\(function\(\)\{/g;
let worker = null, m;
while (worker === null && (m = starts.exec(bundle)) !== null) {
  let i = m.index + 2;
  while (i < bundle.length && bundle[i] !== "'") i += bundle[i] === '\\' ? 2 : 1;
  const code = eval(bundle.slice(m.index + 1, i + 1));
  if (code.includes('self.onmessage') && code.includes('gfm')) worker = code;
}
if (worker === null) { console.log('null'); process.exit(0); }
let tokens = null;
global.self = { postMessage: (message) => { tokens = message.tokens; } };
eval(worker);
self.onmessage({ data: { id: 1, text: fs.readFileSync(0, 'utf8') } });
console.log(JSON.stringify(tokens, (k, v) => (k === 'raw' ? undefined : v)));
"""


def _bundle() -> Path | None:
    try:
        import prefect
    except ImportError:
        return None
    assets = Path(prefect.__file__).parent / "server" / "ui" / "assets"
    for path in sorted(assets.glob("index-*.js")):
        if "self.onmessage" in path.read_text(encoding="utf-8", errors="replace"):
            return path
    return None


def _unescape(text: str) -> str:
    # what the UI's renderer does to a text token before it becomes a DOM text node
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'")):
        text = text.replace(entity, char)
    return text.replace("&amp;", "&")


@dataclass
class Rendered:
    """What the UI makes of a Markdown text."""

    tables: list[list[list[str]]] = field(default_factory=list)
    """Each table's rows (the header first), each row its cells' shown text."""
    links: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    """Code spans and blocks, as shown."""
    blocks: list[str] = field(default_factory=list)
    """Top-level block types in order (heading, paragraph, table, list, blockquote...)."""

    def shown(self, tokens: list[dict[str, Any]]) -> str:
        return "".join(
            self.shown(t["tokens"]) if t.get("tokens") else _unescape(str(t.get("text", "")))
            for t in tokens
        )

    def walk(self, tokens: list[dict[str, Any]]) -> None:
        for token in tokens:
            kind = token.get("type")
            if kind == "table":
                rows = [token["header"], *token["rows"]]
                self.tables.append([[self.shown(c["tokens"]) for c in row] for row in rows])
                for row in rows:
                    for c in row:
                        self.walk(c["tokens"])
                continue
            if kind == "link":
                self.links.append(str(token.get("href")))
            elif kind == "image":
                self.images.append(str(token.get("href")))
            elif kind == "html":
                self.html.append(str(token.get("text")))
            elif kind in ("codespan", "code"):
                self.code.append(_unescape(str(token.get("text", ""))))
            elif kind == "list":
                for item in token.get("items", []):
                    self.walk(item.get("tokens", []))
            self.walk(token.get("tokens") or [])


def render_with(bundle: Path, node: str, text: str) -> Rendered | None:
    """Lex ``text`` with the UI's worker; ``None`` if the bundle has no such worker."""
    done = subprocess.run(
        [node, "-e", _NODE_SCRIPT, str(bundle)],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    tokens = json.loads(done.stdout)
    if tokens is None:
        return None
    result = Rendered(blocks=[str(t.get("type")) for t in tokens if t.get("type") != "space"])
    result.walk(tokens)
    return result


@pytest.fixture(scope="session")
def ui_markdown() -> Iterator[Callable[[str], Rendered]]:
    """``render(text)``: what the Prefect UI makes of Markdown ``text`` (skips without Node or
    without the UI bundle)."""
    node = shutil.which("node")
    bundle = _bundle()
    if node is None or bundle is None:
        pytest.skip("needs Node and the Prefect UI bundle")
    if render_with(bundle, node, "x") is None:
        pytest.skip("the Prefect UI bundle has no Markdown worker this harness knows")

    def render(text: str) -> Rendered:
        result = render_with(bundle, node, text)
        assert result is not None
        return result

    yield render
