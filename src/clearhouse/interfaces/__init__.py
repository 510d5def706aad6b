"""The doors into clearhouse: command line, REST API, FIX, ISO 20022, dashboard. Interfaces parse
input and call the core; nothing in the core imports from here."""
