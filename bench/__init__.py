"""Heavy measurements, one command each (`python bench/NAME.py`; results in BENCHMARKS.md).

A package of the project's distribution, so that benchmarks share helpers by ordinary
imports (`from bench.quality import ...`) wherever the project is installed (`make
install` installs it editable into .venv). The cluster image leaves it out.
"""
