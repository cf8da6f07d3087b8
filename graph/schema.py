"""The schema of `agent.db`: every table and index, as named migrations applied in order.

Owns: the list of migrations (name, SQL), each applied once and recorded by name (store.py
applies them when it opens the database); a new table or column is a new migration at the end,
never an edit of an old one, so every data folder ever made opens.
Does not own: opening the database or applying the migrations (store.py), or LangGraph's
checkpoint tables (`langgraph-checkpoint-sqlite`).
"""

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_transcript",
        """
        CREATE TABLE transcript (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            msg_id TEXT UNIQUE,
            turn INTEGER NOT NULL,
            role TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '',
            reasoning TEXT,
            tool_calls TEXT,
            tool_call_id TEXT,
            name TEXT,
            meta TEXT,
            created REAL NOT NULL
        );
        CREATE INDEX transcript_turn ON transcript(turn);
        """,
    ),
    (
        "0002_turns",
        """
        CREATE TABLE turns (
            turn INTEGER PRIMARY KEY,
            msg_id TEXT,
            pid INTEGER,
            status TEXT NOT NULL DEFAULT 'open',
            why TEXT,
            started REAL,
            ended REAL
        );
        CREATE INDEX turns_open ON turns(status) WHERE status = 'open';
        CREATE INDEX turns_msg ON turns(msg_id);
        INSERT INTO turns (turn, msg_id, status, started, ended)
            SELECT turn, MIN(msg_id), 'done', MIN(created), MAX(created) FROM transcript GROUP BY turn;
        """,
    ),
    (
        "0003_edits",
        """
        CREATE TABLE edits (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            path TEXT NOT NULL,
            before BLOB,
            after_sha TEXT NOT NULL,
            tool TEXT NOT NULL,
            created REAL NOT NULL,
            undone REAL
        );
        """,
    ),
    (
        "0004_approvals",
        """
        CREATE TABLE approvals (
            tool TEXT NOT NULL,
            pattern TEXT NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (tool, pattern)
        );
        """,
    ),
    (
        "0005_memories",
        """
        CREATE TABLE memories (
            id TEXT PRIMARY KEY,
            text TEXT NOT NULL,
            type TEXT NOT NULL,
            importance REAL NOT NULL,
            pinned INTEGER NOT NULL DEFAULT 0,
            source TEXT NOT NULL DEFAULT 'agent',
            turn INTEGER,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            last_used REAL,
            uses INTEGER NOT NULL DEFAULT 0,
            seen INTEGER NOT NULL DEFAULT 1,
            status TEXT NOT NULL DEFAULT 'active',
            replaced_by TEXT,
            why TEXT
        );
        CREATE INDEX memories_status ON memories(status);
        CREATE TABLE memory_meta (key TEXT PRIMARY KEY, value TEXT)
        """,
    ),
    (
        "0006_learning",
        """
        CREATE TABLE rewards (
            turn INTEGER PRIMARY KEY,
            reward REAL NOT NULL DEFAULT 0,
            components TEXT NOT NULL DEFAULT '{}',
            settled REAL,
            bucket TEXT,
            arms TEXT,
            prompt_version INTEGER,
            tainted INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL,
            updated REAL NOT NULL
        );
        CREATE INDEX rewards_prompt ON rewards(prompt_version);
        CREATE TABLE prompts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            text TEXT NOT NULL,
            parent INTEGER,
            author TEXT NOT NULL,
            rationale TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,
            created REAL NOT NULL,
            decided REAL,
            outcome TEXT
        );
        CREATE TABLE examples (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            messages TEXT NOT NULL,
            label TEXT NOT NULL,
            source TEXT NOT NULL,
            reward REAL,
            split TEXT NOT NULL,
            turn INTEGER,
            why TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            updated REAL NOT NULL
        );
        CREATE UNIQUE INDEX examples_turn ON examples(turn, label) WHERE turn IS NOT NULL;
        CREATE TABLE bandit (
            bucket TEXT NOT NULL,
            factor TEXT NOT NULL,
            arm TEXT NOT NULL,
            alpha REAL NOT NULL DEFAULT 1,
            beta REAL NOT NULL DEFAULT 1,
            n INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (bucket, factor, arm)
        );
        CREATE TABLE learning_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL,
            turn INTEGER,
            created REAL NOT NULL
        )
        """,
    ),
    (
        "0007_evolution",
        """
        CREATE TABLE evolution_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started REAL NOT NULL,
            finished REAL,
            status TEXT NOT NULL,
            trigger TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            progress TEXT NOT NULL DEFAULT '{}',
            summary TEXT NOT NULL DEFAULT '{}',
            pid INTEGER
        );
        CREATE TABLE genomes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run INTEGER NOT NULL,
            generation INTEGER NOT NULL,
            prompt TEXT NOT NULL,
            lora TEXT,
            sampling TEXT NOT NULL DEFAULT '{}',
            parents TEXT NOT NULL DEFAULT '[]',
            operator TEXT NOT NULL,
            scores TEXT,
            fitness REAL,
            status TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            feedback TEXT,
            created REAL NOT NULL
        );
        CREATE INDEX genomes_run ON genomes(run, generation)
        """,
    ),
    (
        "0008_turn_backlog",
        """
        CREATE TABLE turn_backlog (
            turn INTEGER PRIMARY KEY,
            queued REAL NOT NULL
        )
        """,
    ),
    (
        # what each turn counts, counted from an index: a version's settled rewards (reward.served),
        # rewards and memories since a time (up to a bound: evolution's auto start, consolidation)
        "0009_counting_indexes",
        """
        CREATE INDEX rewards_served ON rewards(prompt_version, settled);
        DROP INDEX rewards_prompt;
        CREATE INDEX rewards_created ON rewards(created);
        CREATE INDEX memories_created ON memories(created)
        """,
    ),
]
