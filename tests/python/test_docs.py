"""Every code example in docs/ runs, prints what the page says it prints, and type-checks.

The pages are MyST Markdown. Each fenced ``python`` or ``sh`` block is a whole program, run in
a fresh temporary directory with the installed persist (``sh`` blocks with bash, ``-eu -o
pipefail``, and this interpreter's ``python`` first on PATH). Comment lines just above a block
(MyST comments start with ``%``) steer it:

``% test: runs=N``
    run it N times in the same directory (a program that finds what its last run left);
``% test: no-mypy (why)``
    leave it out of the ``mypy --strict`` check (the 2004 programs, unannotated as written);
``% test: output``
    above a ``text`` block: the stdout of the code block before it, all runs together, must
    equal this block; ``...`` in it matches any text, as doctest's ELLIPSIS.

Any other fence language fails the test, so no example can be added that is not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RUN = {"python", "sh"}
# Not code: expected output, and the MyST directives that build the site.
NOT_CODE = {"text", "{toctree}", "{include}"}
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^% test: (.*)$")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    runs: int = 1
    mypy: bool = True
    expected: str | None = None

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def parse(path: Path) -> list[Block]:
    page = path.relative_to(DOCS).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    markers: list[str] = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if m:
            markers.append(m.group(1).strip())
            i += 1
            continue
        fence = FENCE.match(lines[i])
        if not fence or not fence.group(1):
            if lines[i].strip():
                markers = []
            i += 1
            continue
        lang = fence.group(1)
        end = next(j for j in range(i + 1, len(lines)) if lines[j] == "```")
        body = "\n".join(lines[i + 1 : end]) + "\n"
        if lang in RUN:
            block = Block(page, i + 1, lang, body)
            for mk in markers:
                if mk.startswith("runs="):
                    block.runs = int(mk.removeprefix("runs="))
                elif mk.startswith("no-mypy"):
                    block.mypy = False
                else:
                    raise AssertionError(f"{page}:{i + 1}: unknown marker {mk!r}")
            blocks.append(block)
        elif lang == "text" and "output" in markers:
            assert blocks, f"{page}:{i + 1}: an output block with no code block before it"
            blocks[-1].expected = body
        elif lang not in NOT_CODE:
            raise AssertionError(f"{page}:{i + 1}: a {lang!r} block that no test runs")
        markers = []
        i = end + 1
    return blocks


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


BLOCKS = [b for p in pages() for b in parse(p)]


def matches(expected: str, got: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, got, re.DOTALL) is not None


def test_the_docs_have_examples() -> None:
    # The parser found the tutorial's blocks: a change of syntax must not leave nothing to run.
    assert len(BLOCKS) >= 20
    assert any(b.lang == "sh" for b in BLOCKS)
    assert sum(b.expected is not None for b in BLOCKS) >= 15


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_example_runs(block: Block, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSIST_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    if block.lang == "python":
        script = tmp_path / "example.py"
        argv = [sys.executable, str(script)]
    else:
        script = tmp_path / "example.sh"
        argv = ["bash", "-eu", "-o", "pipefail", str(script)]
    script.write_text(block.code, encoding="utf-8")
    out = []
    for run in range(block.runs):
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, (
            f"{block.name} (run {run + 1}) exited {r.returncode}\n"
            f"--- stdout\n{r.stdout}--- stderr\n{r.stderr}"
        )
        out.append(r.stdout)
    if block.expected is not None:
        got = "".join(out)
        assert matches(block.expected, got), (
            f"{block.name} printed\n{got}\nbut the page says\n{block.expected}"
        )


def test_examples_pass_mypy_strict(tmp_path: Path) -> None:
    files = []
    for n, block in enumerate(b for b in BLOCKS if b.lang == "python" and b.mypy):
        f = tmp_path / f"example_{n:02d}.py"
        f.write_text(f"# {block.name}\n{block.code}", encoding="utf-8")
        files.append(str(f))
    assert len(files) >= 10
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(tmp_path / ".mypy_cache"), *files],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, "mypy --strict over the docs' examples:\n" + r.stdout + r.stderr


def test_nothing_sends_users_to_unshipped_files() -> None:
    # DESIGN.md and API.md are the team's working notes, in neither the repository nor the
    # wheel: no page, docstring or message may point a user there.
    shipped = [ROOT / "README.md", ROOT / "FORMAT.md"]
    for top in ("docs", "python", "src", "papers"):
        shipped += [
            p
            for p in (ROOT / top).rglob("*")
            if p.is_file() and p.suffix in {".md", ".rst", ".py", ".pyi", ".rs"}
            and "_build" not in p.parts
        ]  # fmt: skip
    for p in shipped:
        text = p.read_text(encoding="utf-8")
        for name in ("API.md", "DESIGN.md"):
            assert name not in text, f"{p.relative_to(ROOT)} mentions {name}"


def test_every_public_name_has_a_docstring() -> None:
    # The reference is generated from these: a name without one would be a blank entry.
    import inspect

    import persist

    missing = []
    for name in persist.__all__:
        obj = getattr(persist, name)
        if name.isupper() or name.startswith("__"):
            continue  # constants: documented on the reference page
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr not in {"__copy__", "__deepcopy__"}:
                    continue
                if not (member.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
    assert missing == [], f"no docstring: {missing}"
