"""What the tests (and the benches) share: the fake Discord, the test PostgreSQL, local HTTP
sites, the seed questions, test corpora, and the harnesses that run the bot against them.
No test module imports another test module; they import from here."""
