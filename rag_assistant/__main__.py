"""`python -m rag_assistant` runs the command line."""

from .cli import main

raise SystemExit(main())
