"""Several API instances on one PostgreSQL registry and one S3-compatible store, against the
real servers."""
