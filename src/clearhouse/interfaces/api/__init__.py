"""The REST API: FastAPI app (``app``), the node behind it (``service``), participant login and
roles (``auth``), bodies (``models``), oracle observations (``observations``) and client helpers
(``client``). Interfaces call the core; nothing in the core imports from here.
"""
