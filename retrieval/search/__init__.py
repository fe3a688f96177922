"""Answering questions: retrieval, ranking, quotes, "not covered", filters, timelines."""
