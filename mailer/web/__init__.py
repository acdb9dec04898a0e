"""The web service of `mailer serve`: one Starlette app composed from route lists per area."""
