"""Search spaces (one YAML file each), their schema, and the configs they contain."""
