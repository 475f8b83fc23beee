"""Upstream credentials: a bearer token file (re-read when rotated) and basic auth.

Secrets are never part of a message: errors say which file and what is wrong with it,
never what it holds.
"""

from __future__ import annotations

import base64
import os
from typing import Optional, Tuple

from prometheus_cluster_exporter.errors import SourceError


def clean_token(text: str) -> str:
    """The token in a file's text: exactly one trailing newline removed.

    ValueError (without the token) if it is empty or holds whitespace or control
    characters anywhere else: such a value cannot be sent in a header, and a stray
    second line is far more likely a mistake than part of the token.
    """
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ValueError("the token is empty")
    if any(char.isspace() or not char.isprintable() or ord(char) > 126 for char in text):
        raise ValueError("the token holds whitespace, control or non-ASCII characters")
    return text


def read_token(path: str) -> str:
    """The token of a file; ValueError with the reason (never the token)."""
    try:
        with open(path, encoding="utf-8", errors="strict") as handle:
            return clean_token(handle.read())
    except UnicodeDecodeError:
        raise ValueError("the token file is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror}") from None


class TokenFile:
    """A bearer token read from a file, re-read when the file changes (token rotation)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: Optional[Tuple[int, int, int]] = None
        self._token = ""

    def read(self, what: str) -> str:
        try:
            info = os.stat(self.path)
        except OSError as exc:
            raise SourceError(
                f"{what}: cannot read the bearer token file: {exc.strerror}"
            ) from None
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if stamp != self._stamp:
            try:
                self._token = read_token(self.path)
            except ValueError as exc:
                raise SourceError(f"{what}: bearer token file {self.path}: {exc}") from None
            self._stamp = stamp
        return self._token


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"
