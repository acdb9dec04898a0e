"""mailer: the newsletter and contact-mailing tool of the Arctic Smartness network."""

__version__ = "0.1.0"
