"""The check record and everything made from it: behaviour.json, exchanges.json, report.html, summary.md,
Allure, and the behaviour diff."""
