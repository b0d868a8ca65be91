"""Atoll: a DynamoDB-compatible database that runs active-active across regions."""

__version__ = "0.1.0"
