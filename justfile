# cookiecutter-arq: the template's own recipes. `uv run just <recipe>` needs nothing else.

# List the recipes
default:
    @just --list

# Bake the default project, run it on embedded Redis, enqueue a job and print its result
demo:
    uv run python scripts/demo.py

# Run the template's tests (add -m "not slow" to skip the generated projects' own checks)
test *args:
    uv run pytest {{ args }}

# Compare the generated worker with plain arq (add --celery for Celery) and time everyday commands (about 3 minutes)
bench *args:
    uv run python bench/compare.py {{ args }}

# Measure the API: POST /examples against a bare FastAPI route and an in-process enqueue (about 1 minute)
bench-api *args:
    uv run python bench/api.py {{ args }}

# Lint and format-check the template's own Python (hooks, tests, scripts, benchmarks)
lint:
    uv run ruff check hooks tests scripts bench
    uv run ruff format --check hooks tests scripts bench

# Bake a project into ./.demo with the given answers, e.g. `just bake cache_backend=none`
bake *answers:
    uv run cookiecutter --no-input --overwrite-if-exists . -o .demo {{ answers }}
