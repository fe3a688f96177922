# Byline: `make ask Q="..."` sets everything up and answers; `make test` runs the tests
# (`make faults` the fault suite's slow rounds).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INDEX := .byline/index
Q ?= why was the trip cancelled
export BYLINE_INDEX_DIR ?= $(INDEX)

.PHONY: setup ask index sources bot eval bench bench-10m test faults lint fmt clean

setup: $(STAMP)

# torch is installed first, pinned, so pip takes the local CPU wheel (no CUDA download).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(INDEX)/manifest.json: $(STAMP) $(wildcard seeds/*.txt seeds/*.md)
	$(BIN)/byline index seeds

index: $(INDEX)/manifest.json

ask: $(INDEX)/manifest.json
	$(BIN)/byline ask "$(Q)"

sources: $(INDEX)/manifest.json
	$(BIN)/byline sources

bot: $(INDEX)/manifest.json
	$(BIN)/byline-bot

# The whole quality evaluation on SQuAD dev (../shared/data), the real-news dev set (NEWS,
# built by ../shared/tools/build_news_dev.py) and that set padded to 10 and 17 times its
# articles (PADDED, from `python -m bench.news_padded`); each skipped with a message if absent.
# Minutes, and about 40 more the first time the padded sets are indexed (kept in PADDED).
# The report names the CPU kernel it ran on. Another CPU's kernels, emulated (docs/quality.md):
#   make eval RUN="qemu-x86_64 -cpu Haswell" EVAL_ARGS="--subset --out docs/quality-haswell.md"
DATA ?= ../shared/data
NEWS ?= ../news-dev
PADDED ?= ../news-padded
RUN ?=
EVAL_ARGS ?=
eval: $(STAMP)
	$(RUN) $(BIN)/python -m bench.quality $(DATA) --news $(NEWS) --padded $(PADDED) $(EVAL_ARGS)

# Speed and scale against the raw sentence-transformers + FAISS floor; writes
# docs/performance.md. About 30 minutes (the 1M-passage index is built once and cached in
# .byline/bench/). SCALE=100000 for a quicker run.
SCALE ?= 1000000
bench: $(STAMP)
	$(BIN)/python -m bench.performance $(DATA) --scale $(SCALE)

# Ten million passages in the folder store, apart from `make bench` (about an hour and 55 GB
# of disk on 2 cores; the index is cached in .byline/bench/): writes docs/scale-10m.md and
# .json and the 10M row of docs/performance.md.
bench-10m: $(STAMP)
	$(BIN)/python -m bench.scale --passages 10000000 --data $(DATA) --record docs/scale-10m

# docs/cli.md from the `byline` parser (tests/test_docs.py fails when the two drift apart).
.PHONY: docs
docs: $(STAMP)
	$(BIN)/python -m retrieval.cli.reference > docs/cli.md

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

# The fault suite's many-round cases (tests/test_faults.py, marked `faults`; `make test` runs
# the rest of it): concurrent writers, kill -9, damaged files, a full disk at each file,
# readers racing re-indexes. About a minute on 2 cores.
faults: $(STAMP)
	$(BIN)/python -m pytest -m faults

fmt: $(STAMP)
	$(BIN)/ruff check --fix .

clean:
	rm -rf .byline .pytest_cache .ruff_cache *.egg-info
