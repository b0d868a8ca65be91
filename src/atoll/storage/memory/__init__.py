"""The in-memory implementation of `Storage`: pure Python, the same contract, no disk.

storage.py  MemoryStorage: lifecycle, batches, answers (start here)
txn.py      MemoryTxn: every write, with the undo log that makes a job all-or-nothing
reads.py    every read, as ranges of sorted rows
data.py     MemoryData: what a node holds (it outlives a storage, as a file would)
rows.py     SortedRows: rows by key in key order
"""

from atoll.storage.memory.data import MemoryData
from atoll.storage.memory.storage import MemoryStorage
from atoll.storage.memory.txn import MemoryTxn

__all__ = ["MemoryData", "MemoryStorage", "MemoryTxn"]
