"""Text shown to a user: control characters made visible, never sent to the terminal.

    printable("fr\x1b[2J")      # 'fr\\x1b[2J': a group name read from a file cannot clear the screen
"""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """Control characters (an ESC in a group name from a file) as ``\\x1b``; newlines and tabs kept."""
    if text.isprintable() or all(ch in "\n\t" or unicodedata.category(ch) != "Cc" for ch in text):
        return text
    return "".join(ch if ch in "\n\t" or unicodedata.category(ch) != "Cc" else ascii(ch)[1:-1] for ch in text)
