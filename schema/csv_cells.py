"""CSV cells that people open in spreadsheets: the one rule for every CSV the project writes
for a person (`categorize`'s output, the ingest's rejected.csv and warnings.csv).

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula
by spreadsheet programs (OWASP, "CSV Injection"); such a cell gets a leading single quote,
which makes it plain text. Numbers the project writes itself never begin with these.
"""
from __future__ import annotations

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell):
    """`cell`, prefixed with `'` when it is a string that begins with a formula trigger."""
    if isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS):
        return "'" + cell
    return cell
