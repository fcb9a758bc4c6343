"""Real clients the harness drives (one small class per client, shared interface in clients/base.py)."""
