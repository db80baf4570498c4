"""Config handling: load params files (`_base_`, YAML 1.2), the schema of every key, `type:` resolution, and the
checks that run before any heavy work. Import the submodules; this package re-exports the file-level helpers."""

from engine.config.flat import canonical_json, flatten, params_hash
from engine.config.yaml_io import dump_yaml, load_params, merge, parse_yaml, strip_delete

__all__ = ["canonical_json", "dump_yaml", "flatten", "load_params", "merge", "params_hash", "parse_yaml",
           "strip_delete"]
