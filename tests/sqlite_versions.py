"""SQLite files as older versions of cloudqueue wrote them, for upgrade tests."""

#: The tables of a version-3 file (before operations counters and kept deduplication
#: ids); a test adds its rows and ``PRAGMA user_version = 3``.
VERSION_3_TABLES = """
CREATE TABLE topics (name TEXT PRIMARY KEY, ordered INTEGER NOT NULL DEFAULT 0,
                     deduplicated INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE subscriptions (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
    name TEXT NOT NULL, lease REAL NOT NULL DEFAULT 30.0, dead_letter_after INTEGER,
    filter TEXT, UNIQUE (topic, name));
CREATE TABLE messages (seq INTEGER PRIMARY KEY, subscription INTEGER NOT NULL, id TEXT NOT NULL,
    body BLOB NOT NULL, attributes TEXT, ordering_key TEXT, enqueued_at REAL NOT NULL,
    visible_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, lease_id INTEGER);
CREATE INDEX messages_by_visibility ON messages (subscription, visible_at, seq);
CREATE TABLE deduplication (topic TEXT NOT NULL, deduplication_id TEXT NOT NULL,
    message_id TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (topic, deduplication_id)) WITHOUT ROWID;
"""
