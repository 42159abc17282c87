"""The upload registry: kept uploads, the retrain counter, queue, lock and run log, behind one
interface with an embedded SQLite backend."""
