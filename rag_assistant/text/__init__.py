"""Text analysis shared by every layer: one normalizer, the terms of a text, sentences, the
citation-marker grammar, the lay-words glossary and token counting."""
