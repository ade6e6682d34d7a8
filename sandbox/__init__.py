"""Stand-ins for the outside world: supplier portals that behave like real ones, failures included.

:mod:`sandbox.data` holds the fixed accounts and invoices, :mod:`sandbox.pdfs` draws the PDFs,
:mod:`sandbox.portals` (one module per portal) builds the two portal apps, :mod:`sandbox.server` runs them
(``start_sandbox()``, or ``python -m sandbox`` on ports 8701 and 8702). Nothing here imports Glaneur.
"""
