"""The read-only web view (``backfiller ui``, ``backfiller site``; extra ``backfiller[web]``).

:mod:`~backfiller.web.pages` builds each page's data from a project and a
:class:`~backfiller.ledger.LedgerReader` (the JSON of a page is exactly that data);
:mod:`~backfiller.web.bars` turns state ranges into partition bars;
:mod:`~backfiller.web.html` renders a page's data with Jinja2; :mod:`~backfiller.web.app`
serves them (GET and HEAD only), the overview's states kept in memory while their sources
are unchanged (:mod:`~backfiller.web.cache`); :mod:`~backfiller.web.site` writes them as
static files.
Only :mod:`~backfiller.web.app` imports FastAPI, and nothing here is imported by the CLI until
``ui`` or ``site`` runs.
"""
