# Two commands for a newcomer:
#   make demo   set up and run the connector with a built-in demo PBX; open the printed URL
#   make test   set up and run every check and test (what CI runs)

.PHONY: demo run test lint bench

demo:
	@scripts/setup
	.venv/bin/connector demo

run:
	@scripts/setup
	.venv/bin/connector run

lint:
	@scripts/setup --dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

test: lint
	.venv/bin/pytest -q -p no:cacheprovider

bench:
	@scripts/setup --dev
	.venv/bin/python -m bench
