"""Fetching pages and following feeds: the fetch policy, feed lists, the follower."""
