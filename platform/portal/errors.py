"""Errors that services raise and every interface (pages, API) maps the same way."""


class Conflict(Exception):
    """The request clashes with the current state of something else (HTTP 409); the message names it."""

    def __init__(self, message: str, *, existing_url: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.existing_url = existing_url
