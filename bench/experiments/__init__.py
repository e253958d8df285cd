"""What is run and what it is held against: suites and their parser, protocols, published
values, literature claims, the runner and its executors, one run end to end
(:mod:`.single_run`) and re-evaluation from the store."""
