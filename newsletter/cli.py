"""The `newsletter` command: parse options, call the core, print results and exit statuses."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, Any

import click

from .build import Project, clip_warning, write_preview
from .check import check_project
from .digest import moment
from .errors import Invalid, NewsletterError, SourceError, display_path

EXIT_PROBLEM = 2


class Failure(click.ClickException):
    """An expected error: its lines go to stderr as they are, exit status 2, no traceback."""

    exit_code = EXIT_PROBLEM

    def show(self, file: IO[Any] | None = None) -> None:
        for line in self.message.splitlines():
            click.echo(line, err=True)


@contextmanager
def expected_errors() -> Iterator[None]:
    try:
        yield
    except Invalid as exc:
        raise Failure("\n".join(str(p) for p in exc.problems)) from None
    except SourceError as exc:
        raise Failure(str(exc)) from None
    except NewsletterError as exc:
        raise Failure(f"error: {exc}") from None


class AsOf(click.ParamType["date | datetime"]):
    """A day (2022-07-26) or a moment (2022-07-26T07:00+03:00)."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date | datetime:
        if isinstance(value, (date, datetime)):
            return value
        try:
            return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"'{value}' is not a date (YYYY-MM-DD) or an ISO 8601 moment", param, ctx)


def _human_size(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"


@click.group()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=Path("config.yaml"),
    envvar="NEWSLETTER_CONFIG", show_default=True, help="The config file to use.",
)
@click.version_option(package_name="threat-brief-newsletter")
@click.pass_context
def cli(ctx: click.Context, config_path: Path) -> None:
    """Turn threat briefs and an incident timeline into an email newsletter."""
    ctx.obj = config_path


@cli.command()
@click.option("--digest", "digest_name", metavar="NAME", help="Build only this digest (default: all).")
@click.option("--as-of", "as_of", type=AsOf(), help="Compose the issue as of this day or moment (default: now).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="Write under this folder (default: `out` in config.yaml).")
@click.pass_obj
def build(config_path: Path, digest_name: str | None, as_of: date | datetime | None, out_dir: Path | None) -> None:
    """Write an issue's digest.html, digest.txt and a sample digest.eml."""
    now = datetime.now(timezone.utc)
    with expected_errors():
        project = Project.load(config_path)
        for digest in project.config.selected(digest_name):
            preview = write_preview(
                project, digest, moment(as_of or now, digest), out_dir or project.config.out_dir
            )
            click.echo(f"{preview.issue.id}: {preview.rendered.subject}")
            for written in preview.files:
                click.echo(f"  {display_path(written.path)}  {_human_size(written.size)}")
            warning = clip_warning(preview.html_bytes)
            if warning:
                click.echo(f"warning: {warning}", err=True)


@cli.command()
@click.option("--as-of", "as_of", type=AsOf(), help="Render digests as of this day (default: their newest content).")
@click.pass_obj
def check(config_path: Path, as_of: date | datetime | None) -> None:
    """Validate config, content and templates; print every problem as file:line: field: message."""
    report = check_project(config_path, as_of)
    for note in report.notes:
        click.echo(note)
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    for problem in report.problems:
        click.echo(problem)
    if report.problems:
        count = len(report.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
        sys.exit(EXIT_PROBLEM)
    click.echo("ok")


def main() -> None:
    cli(prog_name="newsletter")
