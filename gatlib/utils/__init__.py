"""Small utilities: PyG's name for the segment softmax (``softmax``, as
``torch_geometric.utils.softmax``), and those shared by the command line and the benchmark
scripts."""
from ..ops.softmax import segment_softmax as softmax
from .errors import UserError
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir, read_jsonl
from .lock import FolderLock, FolderLocked
from .measure import PeakMemory, measure, measure_here

__all__ = ["softmax", "measure", "measure_here", "PeakMemory", "atomic_write_bytes",
           "atomic_write_text", "atomic_write_json", "fsync_dir", "read_jsonl", "UserError",
           "FolderLock", "FolderLocked"]
