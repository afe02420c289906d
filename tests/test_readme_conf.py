"""README.md's lists of config options, read against conf/: the "Config groups" table, the Layout
tree, the Models and Recipes tables each name exactly the options that conf/<group>/*.yaml define;
and the advice a diverged run prints is the README's, word for word."""

from __future__ import annotations

import re

import pytest

from resnet_exp.config import CONF_DIR
from resnet_exp.errors import DIVERGED_ADVICE
from tests.helpers.cli import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
# Groups that are not a choice of `python -m resnet_exp.run`: Hydra's own settings and --help
# text, and the bench entry point's recipes (listed in the Recipes table).
NOT_RUN_CHOICES = {"hydra", "hydra/help", "bench_recipe"}
# Groups too long to list in one cell: the table points to the section that lists them.
LISTED_ELSEWHERE = {"arch": "Models", "experiment": "Recipes"}


def conf_groups() -> set[str]:
    return {str(p.relative_to(CONF_DIR)) for p in CONF_DIR.rglob("*") if p.is_dir() and any(p.glob("*.yaml"))}


def conf_options(group: str) -> set[str]:
    return {p.stem for p in (CONF_DIR / group).glob("*.yaml")}


def section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert found, f'README.md has no "## {title}" section'
    return found.group(1)


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the first table in `text` whose header row starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def ticked(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


def tree_descriptions(text: str) -> dict[str, str]:
    """{folder path: its description} of the first fenced tree in `text` (nested by indentation)."""
    block = re.search(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    assert block, "no fenced tree"
    found, stack = {}, []  # stack of (indent, path)
    for line in block.group(1).splitlines():
        words = line.split()
        if not words or not words[0].endswith("/"):
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "/".join([stack[-1][1], words[0].strip("/")] if stack else [words[0].strip("/")])
        found[path] = " ".join(words[1:])
        stack.append((indent, path))
    return found


def test_the_groups_table_names_every_option_of_conf() -> None:
    rows = {cells[0].strip("`"): cells[1] for cells in table_rows(section("Config groups"), "| group |")}
    assert set(rows) == conf_groups() - NOT_RUN_CHOICES
    for group, cell in rows.items():
        if group in LISTED_ELSEWHERE:
            assert cell.startswith(f"see [{LISTED_ELSEWHERE[group]}]"), (group, cell)
        else:
            assert ticked(cell) == conf_options(group), f"README groups table, {group}: {cell}"


def test_the_layout_tree_names_every_option_of_conf() -> None:
    described = tree_descriptions(section("Layout"))
    for group in sorted(conf_groups()):
        text = described.get(f"conf/{group}", "")
        assert "options: " in text, f"README Layout: conf/{group}/ names no options: {text!r}"
        listed = text.split("options: ", 1)[1]
        if group in LISTED_ELSEWHERE:
            assert listed == f"see {LISTED_ELSEWHERE[group]}", (group, listed)
        else:
            assert set(listed.split(", ")) == conf_options(group), f"README Layout, conf/{group}/: {listed}"


def test_the_models_and_recipes_tables_name_every_arch_and_recipe() -> None:
    models = {cells[0] for cells in table_rows(section("Models"), "| name |")}
    assert models == conf_options("arch")
    recipes = {cells[0].strip("`") for cells in table_rows(section("Sweeps and recipes"), "| recipe |")}
    assert recipes == conf_options("experiment") | conf_options("bench_recipe")


def test_the_recipes_table_gives_each_recipes_epochs(compose_config) -> None:
    rows = table_rows(section("Sweeps and recipes"), "| recipe |")
    described = {cells[0].strip("`"): int(found.group(1)) for cells in rows
                 if (found := re.search(r"(\d+) epochs", cells[1])) and cells[0].strip("`") in conf_options("experiment")}
    assert described, "no recipe row gives its epochs"
    for recipe, epochs in described.items():
        assert compose_config(f"experiment={recipe}").trainer.max_epochs == epochs, recipe


def test_the_diverged_advice_is_the_readmes() -> None:
    assert DIVERGED_ADVICE in " ".join(README.split())


@pytest.mark.parametrize("text, expected", [
    ("```\nconf/   top\n  arch/  archs; options: see Models\n  hydra/\n    launcher/  l; options: local\n```\n",
     {"conf": "top", "conf/arch": "archs; options: see Models", "conf/hydra": "",
      "conf/hydra/launcher": "l; options: local"}),
])
def test_tree_reader(text: str, expected: dict[str, str]) -> None:
    assert tree_descriptions(text) == expected
