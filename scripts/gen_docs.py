"""Write the generated parts of the docs from the code, so they cannot drift from it.

- ``docs/commands.md``: every command of the Typer app, with its usage, help, arguments and options
  (their help and defaults);
- the reference part of ``docs/configuration.md`` (below its marker line): every settings key of the
  pydantic models, with its type, default, environment variable and the comment that explains it.

    python scripts/gen_docs.py           rewrite the generated pages
    python scripts/gen_docs.py --check   exit 1, naming each stale page, without writing

``tests/test_docs.py`` runs the check, so a new option or key that is not regenerated fails the suite.
"""

from __future__ import annotations

import enum
import inspect
import re
import sys
import types
import typing
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS_PAGE = ROOT / "docs" / "commands.md"
CONFIG_PAGE = ROOT / "docs" / "configuration.md"
REGENERATE = "python scripts/gen_docs.py"  # also `make docs`
CONFIG_MARKER = (
    "<!-- Everything below is generated from src/portfolio_cli/config.py by "
    f"`{REGENERATE}`: edit the code or the generator, not this part. -->"
)


# --- the command reference ------------------------------------------------------------------------


def _plain(text: str) -> str:
    """Help text as Markdown: rich's ``[bold]…[/]`` becomes code, other markup is dropped."""
    from rich.text import Text

    text = re.sub(r"\[bold\](.*?)\[/(?:bold)?\]", r"`\1`", text, flags=re.S)
    return Text.from_markup(text).plain


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


_TAGS = re.compile(r"\s*\[(default: (?P<default>[^\]]*)|(?P<required>required)|env var: [^\]]*)\]")


def _param_row(param, ctx) -> str | None:
    """One table row from the same help record that ``--help`` prints."""
    record = param.get_help_record(ctx)
    if record is None:
        return None
    names, help_text = record
    default = "—"
    for tag in _TAGS.finditer(help_text):
        if tag.group("required"):
            default = "required"
        elif tag.group("default") is not None:
            default = f"`{tag.group('default')}`"
    help_text = _TAGS.sub("", help_text)
    return f"| `{_cell(names)}` | {_cell(_plain(help_text))} | {default} |"


def _param_rows(command, ctx) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False) or param.name == "help":
            continue
        row = _param_row(param, ctx)
        if row:
            rows.append(row)
    return rows


def _usage(command, ctx) -> str:
    return command.get_usage(ctx).removeprefix("Usage:").strip()


def _command_section(command, ctx, level: int) -> list[str]:
    out = [f"{'#' * level} `{ctx.command_path}`", ""]
    help_text = _plain(inspect.cleandoc(command.help or ""))
    if help_text:
        out += [help_text, ""]
    out += ["```", _usage(command, ctx), "```", ""]
    rows = _param_rows(command, ctx)
    if rows:
        out += ["| argument / option | what it does | default |", "|---|---|---|", *rows, ""]
    return out


def commands_page() -> str:
    import typer

    from portfolio_cli.cli import _app

    root = typer.main.get_command(_app())
    root_ctx = root.context_class(root, info_name="portfolio")
    out = [
        "# Command reference",
        "",
        f"Generated from the command-line app by `{REGENERATE}`; do not edit by hand.",
        "Every command also prints this with `--help`. Exit codes: [exit-codes.md](exit-codes.md).",
        "",
    ]
    out += _command_section(root, root_ctx, 2)
    names = sorted(root.list_commands(root_ctx))  # registration order depends on import order
    out += ["Commands: " + " · ".join(f"[`{n}`](#portfolio-{n})" for n in names), ""]
    for name in names:
        command = root.get_command(root_ctx, name)
        if command is None or command.hidden:
            continue
        ctx = command.context_class(command, info_name=name, parent=root_ctx)
        out += _command_section(command, ctx, 2)
        for sub in getattr(command, "list_commands", lambda _ctx: [])(ctx):
            subcommand = command.get_command(ctx, sub)
            sub_ctx = subcommand.context_class(subcommand, info_name=sub, parent=ctx)
            out += _command_section(subcommand, sub_ctx, 3)
    return "\n".join(out).rstrip() + "\n"


# --- the configuration reference ------------------------------------------------------------------


EXAMPLE_CONFIG = ROOT / "config" / "portfolio.example.toml"


def example_comments() -> dict[str, str]:
    """The comment that explains each key in the example config, by dotted key (``risk.max_position_pct``).

    A comment block belongs to the key right below it; a key with a comment at the end of its line
    (``drift_pct = 5  # the band …``) takes that one. Commented-out keys and tables count too, and a
    named table such as ``[targets.main]`` stands for every ``[targets.NAME]``.
    """
    notes: dict[str, str] = {}
    pending: list[str] = []
    table = ""
    for raw in EXAMPLE_CONFIG.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        commented = line.startswith("#")
        body = line.lstrip("#").strip() if commented else line
        header = re.fullmatch(r"\[([\w.\-]+)\]", body)
        key = re.match(r"(\w+)\s*=\s*[^#]*?(?:#\s*(.*))?$", body)
        if header:
            parts = header.group(1).split(".")
            if parts[0] in ("targets", "portfolios") and len(parts) > 1:
                parts[1] = "NAME"
            table = ".".join(parts)
            if pending and table not in notes:  # a table that is itself a key: [trading.maintenance_margin_rates]
                notes[table] = " ".join(pending)
            pending = []
        elif key and (not commented or re.match(r"\w+\s*=", body)):
            name = f"{table}.{key.group(1)}" if table else key.group(1)
            note = key.group(2) or " ".join(pending)
            if note and name not in notes:
                notes[name] = note
            pending = []
        elif commented and body:
            pending.append(body)
        else:
            pending = []
    return notes


def _comments(cls) -> dict[str, str]:
    """The comment lines directly above each field of a settings class, by field name."""
    notes: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"\s+(\w+)\s*:", line)
        if match and pending:
            notes[match.group(1)] = " ".join(pending)
        pending = []
    return notes


_CONSTRAINTS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def _bounds(metadata) -> str:
    parts = []
    for item in metadata:
        for attr, sign in _CONSTRAINTS:
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matching `{pattern}`")
        for attr, word in (("min_length", "length ≥"), ("max_length", "length ≤")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{word} {value}")
    return ", ".join(parts)


_NAMES = {Decimal: "decimal", int: "integer", float: "number", str: "text", bool: "true/false", Path: "path"}


def _type(annotation, metadata=()) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _type(base, [*metadata, *_field_metadata(extra)])
    bounds = _bounds(metadata)
    suffix = f" ({bounds})" if bounds else ""
    if origin is typing.Literal:
        return " or ".join(f'`"{v}"`' for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(_type(a) for a in args) + suffix + ", optional"
    if origin is dict:
        key, value = typing.get_args(annotation)
        if _is_section(value) or typing.get_origin(value) is dict:
            return "one table per portfolio name (below)"
        return f"table of {_type(key)} = {_type(value)}"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation))) + suffix


def _field_metadata(extra) -> list:
    from pydantic.fields import FieldInfo

    found = []
    for item in extra:
        found += item.metadata if isinstance(item, FieldInfo) else [item]
        if isinstance(item, FieldInfo) and item.description:
            pass
    return found


def _toml(value) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str | Path):
        return f'`"{value}"`'
    if isinstance(value, dict):
        return "`{}`" if not value else "`{" + ", ".join(f"{k} = {_toml(v).strip('`')}" for k, v in value.items()) + "}`"
    return f"`{value}`"


def _is_section(annotation) -> bool:
    from portfolio_cli.config import Section

    return inspect.isclass(annotation) and issubclass(annotation, Section)


def _section_rows(cls, table: str, env_prefix: str | None) -> list[str]:
    from pydantic_core import PydanticUndefined

    notes = _comments(cls)
    documented = example_comments()
    rows = []
    for name, field in cls.model_fields.items():
        if _is_section(field.annotation):
            continue
        kind = _type(field.annotation, field.metadata)
        default = "required" if field.default is PydanticUndefined else _toml(field.default)
        settable = env_prefix is not None and typing.get_origin(field.annotation) is not dict
        env = f"`{env_prefix}{name.upper()}`" if settable else "—"
        about = field.description or documented.get(f"{table}.{name}" if table else name) or notes.get(name, "")
        rows.append(f"| `{name}` | {_cell(kind)} | {default} | {env} | {_cell(about)} |")
    return rows


def configuration_reference() -> str:
    from portfolio_cli import config, paths
    from portfolio_cli.config import Settings, Targets

    header = ["| key | type | default | environment | what it is |", "|---|---|---|---|---|"]
    out = [
        CONFIG_MARKER,
        "",
        "## Reference",
        "",
        "Every key of the config file. `—` in the environment column: the key cannot be set from the",
        "environment (a top-level key, or a table whose keys are case-sensitive).",
        "",
        "### Top level",
        "",
        *header,
        *_section_rows(Settings, "", None),
        "",
        "Environment variables with a meaning of their own: "
        + ", ".join(f"`{getattr(paths, n)}`" for n in sorted(dir(paths)) if n.startswith("ENV_") and n != "ENV_PREFIX")
        + " (see above).",
        "",
    ]
    for name, field in Settings.model_fields.items():
        if not _is_section(field.annotation):
            continue
        cls = field.annotation
        out += [f"### `[{name}]`", ""]
        if cls.__doc__:
            out += [_cell(inspect.cleandoc(cls.__doc__)), ""]
        out += [*header, *_section_rows(cls, name, f"{config.ENV_PREFIX}{name.upper()}__"), ""]
    out += [f"### `[targets.NAME]`", ""]
    if Targets.__doc__:
        out += [_cell(inspect.cleandoc(Targets.__doc__)), ""]
    out += [*header, *_section_rows(Targets, "targets.NAME", f"{config.ENV_PREFIX}TARGETS__NAME__"), ""]
    overridable = _overridable_sections()
    out += [
        "### `[portfolios.NAME.SECTION]`",
        "",
        "Per-portfolio overrides of "
        + ", ".join(f"`[{s}]`" for s in overridable)
        + ": the same keys as those sections, for the portfolio `NAME` only "
        + f"(environment `{config.ENV_PREFIX}PORTFOLIOS__NAME__SECTION__KEY`).",
        "",
    ]
    return "\n".join(out).rstrip() + "\n"


def _overridable_sections() -> list[str]:
    from portfolio_cli.config import Settings

    try:
        Settings.model_validate({"portfolios": {"x": {"no such section": {}}}})
    except Exception as exc:  # the validator names the allowed sections
        found = re.findall(r"'(\w+)'", str(exc).split("can be overridden")[0])
        if found:
            return found
    return ["fees", "trading", "risk"]


def configuration_page() -> str:
    current = CONFIG_PAGE.read_text(encoding="utf-8") if CONFIG_PAGE.exists() else "# Configuration\n"
    manual = current.split(CONFIG_MARKER)[0].rstrip()
    return manual + "\n\n" + configuration_reference()


# --- entry point ----------------------------------------------------------------------------------


def pages() -> dict[Path, str]:
    return {COMMANDS_PAGE: commands_page(), CONFIG_PAGE: configuration_page()}


def stale_pages() -> list[str]:
    """The generated pages whose file differs from what the code generates now."""
    return [
        str(path.relative_to(ROOT))
        for path, text in pages().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_pages()
        for page in stale:
            print(f"{page} is out of date: run `{REGENERATE}`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in pages().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
