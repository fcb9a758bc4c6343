"""Load runs with Locust: pull/push mixes against a registry, their reports and comparisons."""
