# In-repo runs (`pytest suites/`, `pytest tests/`) load the plugin here; `regconform run` passes -p.
pytest_plugins = ["regconform.plugin"]
