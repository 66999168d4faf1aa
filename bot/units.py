"""Units shared by every layer: byte sizes and how people read them."""

from __future__ import annotations

MiB = 1024 * 1024


def format_mb(n_bytes: float) -> str:
    """Megabytes for people: 10, 12.3, 0.5, 1234."""
    mb = n_bytes / MiB
    return f"{mb:.0f}" if mb >= 100 else f"{mb:.3g}"
