"""Where results live: the SQLite store (:mod:`.database`, with its schema, migrations, writer
lock, queries and file areas) and the run folder each run writes (:mod:`.run_folder`)."""
