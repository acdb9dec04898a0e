"""One error hierarchy; each interface translates it once (CLI: `Error: …`, exit code)."""

from __future__ import annotations


class MailerError(Exception):
    """The work failed (exit 1): SMTP unreachable, campaign paused, lease held."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        # One line, always: an error that reaches a terminal or a log never spans lines.
        return " ".join(text.split())


class InputError(MailerError):
    """Bad input (exit 2): usage, config, file, expression."""

    exit_code = 2


class ConfigError(InputError):
    """The configuration file is missing, malformed or has a bad key."""


class FileInputError(InputError):
    """A file given on the command line cannot be read or parsed."""


class AddressError(InputError):
    """An e-mail address is not valid."""


class SegmentError(InputError):
    """A segment expression does not parse or names an unknown kind."""


class TemplateError(InputError):
    """A template or news item is broken."""


class NotFoundError(InputError):
    """A named thing (contact, list, campaign, segment) does not exist."""


class ConflictError(InputError):
    """The request conflicts with the stored state (e.g. a duplicate name)."""


class DatabaseError(MailerError):
    """The database failed under the work (exit 1): locked, damaged, I/O error, disk full."""


class MigrationError(DatabaseError):
    """A migration failed and was rolled back; the database stays at the version before it."""


class SmtpError(MailerError):
    """The SMTP server cannot be reached or refused us as a whole."""


class LeaseHeldError(MailerError):
    """Another run holds the campaign."""
