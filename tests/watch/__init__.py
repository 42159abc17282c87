"""The live Zeek watcher: following, restarts, sinks and metrics, with real writer and
watcher processes."""
