"""The names of the API's error answers (RFC 9457 problem+json).

Every problem ``type`` is ``PROBLEM_BASE`` followed by a stable slug
(``https://reliquary.dev/problems/version-taken``): the registry writes them
(``registry.problems``), the client matches them (``clients.errors``), so the
base is spelled here once.
"""

from __future__ import annotations

PROBLEM_BASE = "https://reliquary.dev/problems/"
