"""Domain primitives shared by every layer: money, calendar, hashing, errors. Imports nothing else of clearhouse."""
