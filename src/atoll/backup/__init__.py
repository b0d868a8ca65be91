"""Backups: table backup files, the backup catalog of a node, point-in-time recovery.

format.py   the backup file (records with CRC32s, a whole-file SHA-256), pure
store.py    a node's backups: files and metadata under its backup directory
pitr.py     point-in-time recovery: kept changelog records, snapshots, the window
replay.py   a table as of a point in time, from a snapshot and the changes after it
service.py  the node's backups and PITR, run in the background
rejoin.py   whether a node restored from a whole-node backup can catch up
"""
