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
    assets/<row>--curve.png     validation NLL against training time, traced FID and modes
                                against training compute, one line per seed
    assets/<board>--dots--<column>.png   per ranked column: each row's value, 95 % interval (`figures`)
    assets/<board>--nll-vs-fid.png       test NLL against FID; implicit models on the FID axis alone
    .evalgen-leaderboard.json   the manifest: every file above with its sha256, written last

``<row>`` is the records' key without the seed, e.g. ``vae--iwae--mnist--quick``, if that is a
safe file name (letters, digits and ``. _ -``), else a sanitised form of it with a hash
(`publish.asset_path`); ``<board>`` is ``<dataset>--<budget>``, ``<column>`` the column's name.
A leaderboard kept in the repository lives in ``leaderboards/<name>/``
with its records in ``leaderboards/<name>/runs/`` and is rebuilt with
``evalgen leaderboard leaderboards/<name>/runs --out leaderboards/<name>``.

Records come from other people's machines, and DIR is often someone's folder, so:

- Text from records is escaped for each format (`escape`): it is text in the page, the Markdown
  (rendered or not), LaTeX and CSV, never a tag, link, command, formula or a split table row.
- Only evalgen's file names are written, each checked to lie inside DIR, and assets/ must be a
  real folder. A file is overwritten or removed only if the manifest says an earlier build wrote
  it and it is unchanged since (or it already holds the new bytes); any other file in the way is
  refused, one line, before anything is written, unless ``--force``. Files of rows that are gone
  are removed the same way; nothing else in DIR (notes, runs/) is touched. Manifest entries that
  are not evalgen's names inside DIR, or are links, are ignored (`publish`).
- A run's sample grid is copied only if it is what `evalgen run` writes: a regular file in the
  run's folder reached without a symbolic link, at most 8 MiB, a PNG and nothing after it, of the
  size `evalgen.harness.grids.grid_size` gives for the record; otherwise one line is reported
  and the row has no grid (`plots`).

How tables are read (cells, markers, ranks, order) is documented in `board`; the code is
`build.build_leaderboard`, and the command is `cli.leaderboard_command`.
"""
