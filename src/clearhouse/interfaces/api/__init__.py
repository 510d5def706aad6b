"""The REST API: FastAPI app (``app``), the node behind it (``service``), participant login and
roles (``auth``), bodies (``models``), FIX and ISO 20022 messages as trade batches and their
answers (``messages``), the journal of submissions (``journal``) and client helpers
(``client``). Interfaces call the core; nothing in the core imports from here.
"""
