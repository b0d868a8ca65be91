"""Backups: table backup files, the backup catalog of a node, point-in-time recovery.

format.py   the backup file (records with CRC32s, a whole-file SHA-256), pure
store.py    a node's backups: files and metadata under its backup directory
pitr/       point-in-time recovery: the table archive, snapshots, replay to a time
"""
