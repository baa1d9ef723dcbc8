"""Report the documentation snippets that are shown but not executed, at the end of the run."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reports = [r for rs in terminalreporter.stats.values() for r in rs if hasattr(r, "nodeid")]
    if not any("test_snippets.py" in r.nodeid for r in reports):
        return
    from docs_snippets import collect

    pages = collect()
    runnable = sum(len(p.runnable) for p in pages)
    skipped = [b for p in pages for b in p.blocks if b.skipped]
    terminalreporter.section("documentation snippets")
    terminalreporter.write_line(f"{runnable} python blocks run by tests/docs, {len(skipped)} shown but not run:")
    for b in skipped:
        terminalreporter.write_line(f"  {b.where}: {b.reason}")
