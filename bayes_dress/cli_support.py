"""What every command shares: one-line errors, clean exits on signals, progress lines.

Every user mistake ends in one line on stderr (``error: ...``) and exit status 2; Ctrl-C
ends a command with exit 130 and SIGTERM with 143, each with one line, no traceback and
nothing half-written (the run directory writer removes its temporary directory).
"""

from __future__ import annotations

import functools
import signal
import sys

import click

from bayes_dress.errors import BayesDressError

EXIT_USER_ERROR = 2
EXIT_DIAGNOSTICS = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that cleanup runs as for Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


def one_line(message: str) -> str:
    """``message`` with line breaks and other control characters escaped (``\\n``), so
    that a value read from a user's file cannot split an error over several lines."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def user_errors(command):
    """Turn :class:`BayesDressError` into a one-line message and a non-zero exit, and
    Ctrl-C or SIGTERM into a one-line message and exit 130 or 143."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return command(*args, **kwargs)
        except BayesDressError as err:
            click.echo(f"error: {one_line(str(err))}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            # Off the terminal's "^C" first; a pipe gets exactly one line.
            start = "\n" if sys.stderr.isatty() else ""
            click.echo(f"{start}interrupted: nothing was written", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Terminated:
            click.echo("terminated: nothing was written", err=True)
            sys.exit(EXIT_TERMINATED)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


class Progress:
    """What a long command is doing, one line at a time on stderr, on a terminal only
    (quiet when piped, and with ``--quiet``)."""

    def __init__(self, quiet: bool = False):
        self.enabled = not quiet and sys.stderr.isatty()

    def __call__(self, message: str) -> None:
        if self.enabled:
            click.echo(f"… {one_line(message)}", err=True)
