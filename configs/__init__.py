"""Named configs (YAML), installed as the package `seggpt_vos_configs` (see setup.cfg)."""
