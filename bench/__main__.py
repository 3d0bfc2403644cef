"""``python -m bench``: run the benchmark and print the table."""

from bench.run import main

raise SystemExit(main())
