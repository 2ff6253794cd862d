"""Evaluation: Q&A files (:mod:`.dataset`), metrics (:mod:`.metrics`), the run
(:mod:`.runner`), the report files and comparisons (:mod:`.reports`), the gate
(:mod:`.gate`)."""
