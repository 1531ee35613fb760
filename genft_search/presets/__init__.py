"""Search-space presets and the paper's per-task settings, kept as YAML data."""
