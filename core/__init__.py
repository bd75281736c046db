"""The bottom layer: plain types, the read-only replica reader, contract constants and settings groups shared by every layer; imports nothing of the project."""
