"""The ``glaneur`` command: an outer layer beside ``flows/``, over the domain package ``glaneur``.

One module per command group; :mod:`cli.main` assembles them. Commands are thin: parse, call the
domain, render with Rich. Heavy modules (SQLAlchemy, the domain, Prefect) load inside the commands
that need them, so that ``glaneur --help`` and ``glaneur statements parse`` answer at once.
"""
