"""The docs a newcomer reads stay true: docs/configuration.md is what scripts/config_doc.py generates from the settings,
README's layout picture names exactly the real top-level folders, and every relative link (and its #anchor) in
README.md and docs/*.md leads somewhere."""
from __future__ import annotations

import re
from pathlib import Path

from scripts import config_doc

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
NOT_IN_PICTURE = {"tests", ".venv", ".cache"}  # tests/ may be in the picture; it need not be
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def test_configuration_doc_is_generated_from_the_settings():
    written = config_doc.TARGET.read_text(encoding="utf-8") if config_doc.TARGET.exists() else ""
    assert written == config_doc.render(), (
        f"docs/configuration.md is stale (a setting or its description changed): run {config_doc.COMMAND}")


def layout_picture() -> list[str]:
    """The first word of each line of the code block under README's '## Layout' heading."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Layout")
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
    return [line.split()[0] for line in lines[fence + 1:end] if line.strip() and not line[0].isspace()]


def top_level_code() -> set[str]:
    """Every top-level directory holding .py files (as `name/`) and every top-level .py file, from the file system."""
    found = set()
    for entry in ROOT.iterdir():
        if entry.name.startswith(".") or entry.name in NOT_IN_PICTURE:
            continue
        if entry.is_dir() and next(entry.rglob("*.py"), None) is not None:
            found.add(entry.name + "/")
        elif entry.is_file() and entry.suffix == ".py":
            found.add(entry.name)
    return found


def test_readme_layout_picture_names_the_real_top_level_folders():
    picture = layout_picture()
    assert len(picture) == len(set(picture)), f"named twice in README's layout picture: {picture}"
    missing = sorted(top_level_code() - set(picture))
    assert not missing, (f"README.md's layout picture (## Layout) lacks {', '.join(missing)}: add one line for each "
                         "(and its longer entry in docs/development.md, 'What each folder holds')")
    gone = [name for name in picture
            if not ((ROOT / name).is_dir() if name.endswith("/") else (ROOT / name).is_file())]
    assert not gone, f"README.md's layout picture names what is not on disk: {', '.join(gone)}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen, in_code = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6} (.+)", line)):
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path):
    in_code = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            for target in LINK.findall(line):
                if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: are not checked
                    yield number, target


def test_relative_links_in_readme_and_docs_lead_somewhere():
    broken = []
    for doc in DOCS:
        for number, target in links(doc):
            file_part, _, anchor = target.partition("#")
            destination = (doc.parent / file_part).resolve() if file_part else doc
            where = f"{doc.relative_to(ROOT)}:{number}: {target}"
            if not destination.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                broken.append(f"{where} (no heading with that anchor)")
    assert not broken, "broken relative links:\n" + "\n".join(broken)


def test_readme_stays_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150, (
        "README.md is for the first two screens: move detail into docs/ and link to it")
