"""``python -m core.corpus --output data/stdlib.snapshot``: build the default corpus's snapshot (``make index``)."""

from core.corpus.build import main

raise SystemExit(main())
