"""Small utilities shared by the command line and the benchmark scripts."""
from .io import atomic_write_json, atomic_write_text, read_jsonl
from .measure import PeakMemory, measure, measure_here

__all__ = ["measure", "measure_here", "PeakMemory", "atomic_write_text", "atomic_write_json",
           "read_jsonl"]
