"""Building an index: the pipeline from articles to a published generation, and wire-copy
detection."""
