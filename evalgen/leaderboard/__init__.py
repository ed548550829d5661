"""Leaderboards from run records: ``evalgen leaderboard RUNS_DIR --out DIR``.

Every ``records/*.json`` under RUNS_DIR (at any depth: the ``--out`` folders of ``evalgen run``
on several machines) is validated against the run-record schema (`schema`) and merged
(`collect`): identical copies of a record are fine; two different records under one key,
records of another schema version or evalgen major version, and records that disagree on what a
dataset or budget is are errors, one line each, and nothing is written.

Output layout (DIR), every file byte-for-byte the same when rebuilt from the same records::

    leaderboard.md     one table per (dataset, budget), the capability matrix, image links
    leaderboard.csv    every row of every table, numbers unrounded, with ranks and commands
    leaderboard.tex    the same tables, booktabs tabulars to \\input (needs booktabs)
    index.html         one static page, sortable columns (inline script: works offline)
    protocol.md        datasets, budgets, hardware, versions; a command to reproduce every row
    assets/<row>--samples.png   the lowest finished seed's sample grid (copied from the run)
    assets/<row>--curve.png     validation NLL against training time, one line per seed

``<row>`` is the records' key without the seed, e.g. ``vae--iwae--mnist--quick``. PNGs of rows
that are gone are removed from assets/; nothing else in DIR is touched. A leaderboard kept in
the repository lives in ``leaderboards/<name>/`` with its records in ``leaderboards/<name>/runs/``
and is rebuilt with ``evalgen leaderboard leaderboards/<name>/runs --out leaderboards/<name>``.

How tables are read (cells, markers, ranks, order) is documented in `board`; the code is
`build.build_leaderboard`, and the command is `cli.leaderboard_command`.
"""
