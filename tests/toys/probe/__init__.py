"""A hook that records, per process, what distributed hooks are about: BatchNorm statistics and the items seen."""
