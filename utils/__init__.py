"""Anomalyze library code: parsing, features, detector, scoring, persistence."""
