"""[D] The table endpoints of SPEC 9 and 13 declared ahead of their views: all built now.

The served document lists only routes that exist (so that what it promises can be fuzzed).
Every declaration that waited here has its view: `POST /exports` of a table
(`ExportRequest`), `POST /imports` of a table, `POST /jobs/{id}/remap`, the import history
and rollback routes (web/api.py, web/schemas.py). A later planned route is declared here
first, the same way.
"""

from __future__ import annotations
