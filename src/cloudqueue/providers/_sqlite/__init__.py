"""The SQLite provider's parts: the schema and its SQL (``schema``), the
database file with its connections and error table (``database``), the
operations on destinations (``store``) and the drivers (``drivers``)."""
