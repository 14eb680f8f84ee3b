"""Durable state of the head node: one SQLite file in WAL mode, a versioned schema, explicit transactions.

Rows are written as compare-and-set on their state: an update whose expected state no longer
holds changes nothing and raises `StaleState`, so no change is ever silently lost or doubled.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model.objects import Job, Task
from .jsontext import text as _dump

# Each entry upgrades the schema from version N-1 to N. Never edit one that has shipped: add another.
MIGRATIONS: list[str] = [
    # 1: jobs, tasks, history, cluster properties.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE jobs (id INTEGER PRIMARY KEY, state INTEGER NOT NULL, owner TEXT NOT NULL, data TEXT NOT NULL);
    CREATE TABLE tasks (
        job_id INTEGER NOT NULL REFERENCES jobs(id), task_id INTEGER NOT NULL, sub_id INTEGER NOT NULL,
        state INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (job_id, task_id, sub_id));
    CREATE TABLE history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, time REAL NOT NULL,
        actor TEXT NOT NULL, event TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '');
    CREATE INDEX history_by_job ON history(job_id);
    CREATE INDEX history_by_time ON history(time);
    CREATE TABLE cluster_properties (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('next_job_id', '1');
    """,
    # 2: allocations get their own table, so that node queries need not read every job.
    """
    CREATE TABLE allocations (
        job_id INTEGER NOT NULL REFERENCES jobs(id), node TEXT NOT NULL, cores INTEGER NOT NULL,
        PRIMARY KEY (job_id, node));
    INSERT INTO allocations (job_id, node, cores)
        SELECT jobs.id, a.key, a.value FROM jobs, json_each(json_extract(jobs.data, '$.allocation')) AS a;
    """,
    # 3: requests already applied (by caller and request id), so that a resent request applies once.
    """
    CREATE TABLE applied_requests (key TEXT PRIMARY KEY, time REAL NOT NULL, reply TEXT NOT NULL);
    CREATE INDEX applied_requests_by_time ON applied_requests(time);
    """,
    # 4: ended jobs are not kept in memory; the head node reads them by state when asked.
    """
    CREATE INDEX jobs_by_state ON jobs(state);
    """,
    # 5: nodes (their state, set by Set-HpcNodeState), node groups and memberships, node state history.
    # A membership removed by Remove-HpcGroup is kept as removed, so that headnode.yaml does not bring it back.
    """
    CREATE TABLE nodes (name TEXT PRIMARY KEY COLLATE NOCASE, state TEXT NOT NULL, changed REAL NOT NULL);
    CREATE TABLE node_groups (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        description TEXT NOT NULL DEFAULT '');
    CREATE TABLE node_group_members (group_id INTEGER NOT NULL REFERENCES node_groups(id) ON DELETE CASCADE,
        node TEXT NOT NULL COLLATE NOCASE, removed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (group_id, node));
    CREATE TABLE node_history (seq INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, time REAL NOT NULL,
        state TEXT NOT NULL, previous TEXT NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '');
    CREATE INDEX node_history_by_time ON node_history(time);
    """,
    # 6: job templates, by name (any case).
    """
    CREATE TABLE job_templates (name TEXT PRIMARY KEY COLLATE NOCASE, data TEXT NOT NULL);
    """,    # 7: ended jobs by end time (the hourly cleanup and job history ask by it; without the index each
    # read every stored job, blocking the loop for seconds with a million of them, first at a start).
    """
    CREATE INDEX jobs_by_end_time ON jobs(json_extract(data, '$.end_time'));
    """,
    # 8: the end time in a column of its own, indexed by the same name: an index on an expression of the
    # JSON made every write of a job parse its old and its new row (a tenth of a bulk cancel's work).
    """
    ALTER TABLE jobs ADD COLUMN end_time REAL;
    UPDATE jobs SET end_time = json_extract(data, '$.end_time') WHERE json_extract(data, '$.end_time') IS NOT NULL;
    DROP INDEX jobs_by_end_time;
    CREATE INDEX jobs_by_end_time ON jobs(end_time);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
REPLIES_PER_USER = 1_000  # replies kept for resends, per user
# Pages (4 KiB) the WAL may hold before a commit copies it into the database itself. SQLite's default,
# 1,000, made every commit of a bulk cancel (500 jobs write about that much) pay that copy and its syncs;
# the head node checkpoints when it is idle instead (Store.checkpoint), and this bounds the WAL under
# steady load. It is room for some 25,000 jobs' bulk changes (200 MB): at 10,000 pages, the second of two
# Stop-HpcJob of 5,000 jobs run one after the other paid the copy, 410-480 ms instead of 270-300 ms.
# With synchronous=NORMAL a commit survives a crash of the process; a power loss loses the commits since the
# last checkpoint, which under steady load with no idle moment is up to this much.
WAL_PAGES = 50_000
BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for a lock another connection holds


class StaleState(Exception):
    """A compare-and-set update found another state than the one it expected."""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._depth = 0
        self._pending: list[tuple[int, Callable[[], None], bool]] = []  # after_commit actions, by savepoint depth
        self._allocations: dict[int, dict[str, int]] = {}  # what the allocations table holds, per job
        self._kept: dict[str, int] = {}  # replies kept, per user (key prefix): counted once, then followed
        self._checked = 0  # the connection's total_changes at the last checkpoint
        self._written: set[int] = set()  # jobs whose rows the open transaction writes (or tried to)
        self._undo: list[Callable[[set[int]], None]] = []  # told of them when it is rolled back
        self._migrate()
        self._allocations = self._read_allocations()

    def close(self) -> None:
        self.db.close()

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.version
        if current > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema version {current}; this head node knows up to "
                               f"{SCHEMA_VERSION}. Upgrade the software instead of opening it.")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {version}")

    def transaction(self) -> Transaction:
        """BEGIN IMMEDIATE ... COMMIT. A nested one is a savepoint: when it fails, only its own writes
        are undone and the outer transaction goes on."""
        return Transaction(self)

    def atomic(self) -> Transaction | contextlib.nullcontext[None]:
        """A transaction, or inside one, a part of it (no savepoint of its own: two statements fewer):
        for writes whose failure no caller catches inside the enclosing transaction, which undoes them."""
        return Transaction(self) if self._depth == 0 else contextlib.nullcontext()

    def after_commit(self, action: Callable[[], None], last: bool = False) -> None:
        """Runs `action` once the changes made so far are durable; never, if they are rolled back.
        (Intent before action: a signal is sent only after the cancel that asks for it is committed.)
        A `last` action runs after the others, once however often it was asked for: it can carry out
        in one go what they gathered."""
        if self._depth == 0:
            action()
        else:
            self._pending.append((self._depth, action, last))

    def on_rollback(self, action: Callable[[set[int]], None]) -> None:
        """`action(job ids)` runs whenever a transaction is rolled back (a refusal, a full disk, a failed
        COMMIT), with the jobs it wrote or tried to write: the holder of copies in memory puts them back
        as stored. One place for every path, rather than each caller remembering what it changed."""
        self._undo.append(action)

    def _begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE" if self._depth == 0 else f"SAVEPOINT s{self._depth}")
        self._depth += 1

    def _end(self, ok: bool) -> None:
        self._depth -= 1
        depth = self._depth
        try:
            if depth:
                if not ok:
                    self.db.execute(f"ROLLBACK TO s{depth}")
                    self._kept = {}
                    self._pending = [p for p in self._pending if p[0] <= depth]
                self.db.execute(f"RELEASE s{depth}")
                return
            if ok:
                self.db.execute("COMMIT")
        except sqlite3.Error:
            if depth == 0:
                self._rollback()
            raise
        if not ok:
            self._rollback()
            return
        actions, self._pending, self._written = self._pending, [], set()
        lasts: list[Callable[[], None]] = []
        for _, action, last in actions:
            if not last:
                action()
            elif action not in lasts:
                lasts.append(action)
        for action in lasts:
            action()

    @property
    def unchecked(self) -> bool:
        """Rows were written since the last checkpoint (an empty transaction writes none)."""
        return self.db.total_changes != self._checked

    def checkpoint(self) -> bool:
        """Copies the WAL's commits into the database file (and syncs it), then empties the WAL file: what a
        commit did itself once the WAL reached WAL_PAGES, done when the head node is idle. Emptied, for a
        copy only makes the WAL reusable, and the file keeps its size (41 MB after a bulk cancel of 5,000
        jobs) for ever. Nothing waits: while a reader outside (a backup, sqlite3) still reads the WAL, as
        much as can be is copied and False says to try again later."""
        if self._depth:
            return False
        self.db.execute("PRAGMA busy_timeout=0")  # (a TRUNCATE checkpoint would wait for readers)
        try:
            busy = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not busy:
            self._checked = self.db.total_changes
        return not busy

    def _rollback(self) -> None:
        self._pending = []
        self._kept = {}  # (a reply recorded in what was rolled back is not kept)
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        with contextlib.suppress(sqlite3.Error):  # (a failed migration may not have the table yet)
            self._allocations = self._read_allocations()
        written, self._written = self._written, set()
        for action in self._undo:
            action(written)

    def _read_allocations(self) -> dict[int, dict[str, int]]:
        allocations: dict[int, dict[str, int]] = {}
        for job_id, node, cores in self.db.execute("SELECT job_id, node, cores FROM allocations"):
            allocations.setdefault(job_id, {})[node] = cores
        return allocations

    def allocate_job_id(self) -> int:
        with self.transaction():
            value = int(self.db.execute("SELECT value FROM meta WHERE key='next_job_id'").fetchone()[0])
            self.db.execute("UPDATE meta SET value=? WHERE key='next_job_id'", (str(value + 1),))
        return value

    def insert_job(self, job: Job) -> None:
        self._written.add(job.id)
        with self.transaction():
            self.db.execute("INSERT INTO jobs (id, state, owner, end_time, data) VALUES (?, ?, ?, ?, ?)",
                            (job.id, int(job.state), job.owner, job.end_time, _dump(job.to_row())))
            for task in job.tasks:
                self.insert_task(task)

    def insert_task(self, task: Task) -> None:
        self._written.add(task.job_id)
        with self.transaction():
            self.db.execute("INSERT INTO tasks (job_id, task_id, sub_id, state, data) VALUES (?, ?, ?, ?, ?)",
                            (task.job_id, task.task_id, task.sub_id, int(task.state), _dump(task.to_row())))
            for instance in task.instances:
                self.insert_task(instance)

    def save_job(self, job: Job, expected: int | None = None) -> None:
        """Writes the job; with `expected`, only if its stored state is still that one."""
        self._written.add(job.id)
        with self.atomic():
            if self.db.execute(_UPDATE_JOB, _job_values(job, expected)).rowcount != 1:
                raise StaleState(f"job {job.id} is no longer in the state this change expected")
            self._save_allocation(job)

    def _save_allocation(self, job: Job) -> None:
        if self._allocations.get(job.id, {}) != job.allocation:  # they change only at start and end
            self.db.execute("DELETE FROM allocations WHERE job_id=?", (job.id,))
            self.db.executemany("INSERT INTO allocations (job_id, node, cores) VALUES (?, ?, ?)",
                                [(job.id, node, cores) for node, cores in job.allocation.items()])
            self._allocations[job.id] = dict(job.allocation)

    def save_task(self, task: Task, expected: int | None = None) -> None:
        self._written.add(task.job_id)
        with self.atomic():
            if self.db.execute(_UPDATE_TASK, _task_values(task, expected)).rowcount == 0:
                exists = self.db.execute("SELECT 1 FROM tasks WHERE job_id=? AND task_id=? AND sub_id=?",
                                         (task.job_id, task.task_id, task.sub_id)).fetchone()
                if exists:
                    raise StaleState(f"task {task.key} is no longer in the state this change expected")
                self.insert_task(task)

    def write(self, rows: Rows) -> None:
        """Gathered changes of many jobs, one statement per table, compare-and-set as save_job and
        save_task do: StaleState if any row is not as expected, and then the caller's transaction,
        rolled back, keeps none of them."""
        self._written.update([j.id for j, _ in rows.jobs] + [t.job_id for t in rows.tasks])
        with self.atomic():
            for sql, values in ((_UPDATE_JOB, [_job_values(j, e) for j, e in rows.jobs]),
                                (_UPDATE_TASK, [_task_values(t, None) for t in rows.tasks])):
                if values and self.db.executemany(sql, values).rowcount != len(values):
                    raise StaleState("a job or task of this change is no longer in the state it expected")
            for job, _ in rows.jobs:
                self._save_allocation(job)
            self.db.executemany(_INSERT_HISTORY, rows.history)

    def delete_job(self, job_id: int) -> None:
        """Removes a job and its tasks and allocations; its history rows stay."""
        with self.transaction():
            for table in ("tasks", "allocations"):
                self.db.execute(f"DELETE FROM {table} WHERE job_id=?", (job_id,))
            self.db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def delete_instances(self, job_id: int, task_id: int) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM tasks WHERE job_id=? AND task_id=? AND sub_id>0", (job_id, task_id))

    def load_jobs(self, job_id: int | None = None, states: Iterable[int] | None = None,
                  ended_before: float | None = None, ended_after: float | None = None) -> list[Job]:
        """Stored jobs with their tasks: all of them, the job `job_id` (none when it is not stored), or
        those in `states` (the jobs table's state column, indexed), optionally ended before a time."""
        where, values = self._job_filter(job_id, states, ended_before, ended_after)
        # By end time, through its index (SQLite would rather read every job in id order).
        jobs_table = "jobs INDEXED BY jobs_by_end_time" if (ended_before, ended_after) != (None, None) else "jobs"
        jobs = {row[0]: Job.from_row(json.loads(row[1])) for row in
                self.db.execute(f"SELECT id, data FROM {jobs_table} WHERE {where} ORDER BY id", values)}
        tasks: dict[tuple[int, int], Task] = {}
        for (data,) in self.db.execute(f"SELECT data FROM tasks WHERE job_id IN (SELECT id FROM {jobs_table} "
                                       f"WHERE {where}) "
                                       "ORDER BY job_id, task_id, sub_id", values):
            task = Task.from_row(json.loads(data))
            if task.sub_id == 0:
                tasks[(task.job_id, task.task_id)] = task
                jobs[task.job_id].tasks.append(task)
            else:
                tasks[(task.job_id, task.task_id)].instances.append(task)
        return list(jobs.values())

    def list_jobs(self, query: JobQuery, size: int | None = None) -> tuple[list[Job], bool]:
        """A page of stored jobs in the query's states, filtered and paged in SQL (the state index, the
        primary key), without their tasks: their records use the counters stored with ended jobs. A job
        stored before those counters existed is read with its tasks. With `size` (bytes), the page ends with
        the job whose stored text passes it; and whether it so ended before `query.limit` jobs."""
        where, values = query.sql()
        rows = self.db.execute(f"SELECT data FROM jobs WHERE {where} ORDER BY id LIMIT ?", [*values, query.limit])
        jobs: list[Job] = []
        read = 0
        for (data,) in rows:
            if size is not None and read >= size:
                return self._with_counters(jobs), True
            read += len(data)
            jobs.append(Job.from_row(json.loads(data)))
        return self._with_counters(jobs), False

    def stored_job(self, job_id: int) -> Job | None:
        """One stored job, without its tasks as list_jobs reads it; None if there is none."""
        row = self.db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._with_counters([Job.from_row(json.loads(row[0]))])[0] if row else None

    def _with_counters(self, jobs: list[Job]) -> list[Job]:
        return [job if job.summary else next(iter(self.load_jobs(job.id)), job) for job in jobs]

    def job_states(self, ids: list[int]) -> dict[int, int]:
        """The stored state of each of these jobs that exists (no task is read)."""
        states: dict[int, int] = {}
        wanted = [i for i in ids if 0 < i < 2**63]  # (SQLite's integers)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            states.update(self.db.execute(f"SELECT id, state FROM jobs WHERE id IN ({','.join('?' * len(chunk))})",
                                          chunk).fetchall())
        return states

    @staticmethod
    def _job_filter(job_id: int | None, states: Iterable[int] | None,
                    ended_before: float | None, ended_after: float | None = None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        values: list[Any] = []
        if job_id is not None:
            clauses.append("id = ?")
            values.append(job_id)
        if states is not None:
            wanted = [int(s) for s in states]
            # By end time, the end-time index (ended jobs are most of the store: the state index would read them all).
            by_time = "+" if ended_before is not None or ended_after is not None else ""
            clauses.append(f"{by_time}state IN ({','.join('?' * len(wanted))})" if wanted else "0")
            values += wanted
        if ended_before is not None:
            clauses.append("end_time < ?")
            values.append(ended_before)
        if ended_after is not None:
            clauses.append("end_time >= ?")
            values.append(ended_after)
        return " AND ".join(clauses) or "1", values

    def applied_reply(self, key: str) -> Any:
        """The reply once given to the request `key`, or None."""
        row = self.db.execute("SELECT reply FROM applied_requests WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def record_reply(self, key: str, time: float, reply: Any) -> None:
        """Keeps the reply; one user keeps at most REPLIES_PER_USER (a resend comes soon after its
        request, so the oldest go first). Keys begin with the caller's uid. How many a user keeps is
        counted once and then followed, so that a reply costs no read of all the others."""
        prefix = key.split(":", 1)[0] + ":"
        bounds = (prefix, prefix[:-1] + ";")  # (the key's index)
        with self.transaction():
            if prefix not in self._kept:
                self._kept[prefix] = self.db.execute("SELECT count(*) FROM applied_requests WHERE key > ? AND key < ?",
                                                     bounds).fetchone()[0]
            new = self.db.execute("SELECT 1 FROM applied_requests WHERE key = ?", (key,)).fetchone() is None
            self.db.execute("INSERT OR REPLACE INTO applied_requests (key, time, reply) VALUES (?, ?, ?)",
                            (key, time, _dump(reply)))
            self._kept[prefix] += new
            excess = self._kept[prefix] - REPLIES_PER_USER
            if excess > 0:
                self._kept[prefix] -= self.db.execute(
                    "DELETE FROM applied_requests WHERE key IN (SELECT key FROM applied_requests WHERE key > ? AND "
                    "key < ? ORDER BY time, key LIMIT ?)", (*bounds, excess)).rowcount

    def forget_replies(self, before: float) -> None:
        self._kept = {}  # counted again at each user's next reply
        with self.transaction():
            self.db.execute("DELETE FROM applied_requests WHERE time < ?", (before,))

    def add_history(self, job_id: int, time: float, actor: str, event: str, message: str = "",
                    details: str = "") -> None:
        self.db.execute(_INSERT_HISTORY, (job_id, time, actor, event, message, details))

    def history(self, job_id: int | None = None, start: float | None = None,
                end: float | None = None) -> list[dict[str, Any]]:
        clauses, values = [], []
        for clause, value in (("job_id = ?", job_id), ("time >= ?", start), ("time < ?", end)):
            if value is not None:
                clauses.append(clause)
                values.append(value)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self.db.execute(f"SELECT job_id, time, actor, event, message, details FROM history{where} "
                               "ORDER BY seq", values)
        keys = ("job_id", "time", "actor", "event", "message", "details")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # Nodes and node groups (schema 5).

    def node_states(self) -> dict[str, tuple[str, float]]:
        return {name: (state, changed) for name, state, changed in
                self.db.execute("SELECT name, state, changed FROM nodes")}

    def save_node_state(self, name: str, state: str, previous: str, time: float, actor: str,
                        reason: str = "") -> None:
        self.db.execute("INSERT INTO nodes (name, state, changed) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE "
                        "SET state=excluded.state, changed=excluded.changed", (name, state, time))
        self.db.execute("INSERT INTO node_history (node, time, state, previous, actor, reason) VALUES (?,?,?,?,?,?)",
                        (name, time, state, previous, actor, reason))

    def node_history(self, nodes: list[str] | None, start: float | None, end: float | None) -> list[dict[str, Any]]:
        clauses: list[str] = []
        values: list[Any] = []
        for clause, value in (("time >= ?", start), ("time < ?", end)):
            if value is not None:
                clauses.append(clause)
                values.append(value)
        if nodes is not None:
            clauses.append(f"node IN ({','.join('?' * len(nodes))})")
            values += nodes
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        keys = ("node", "time", "state", "previous", "actor", "reason")
        rows = self.db.execute(f"SELECT {', '.join(keys)} FROM node_history{where} ORDER BY seq", values)
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def groups(self) -> list[tuple[int, str, str, list[str]]]:
        """(id, name, description, member nodes) of every node group, by id."""
        members: dict[int, list[str]] = {}
        for group_id, node in self.db.execute("SELECT group_id, node FROM node_group_members WHERE removed = 0 "
                                              "ORDER BY node"):
            members.setdefault(group_id, []).append(node)
        return [(gid, name, desc, members.get(gid, [])) for gid, name, desc in
                self.db.execute("SELECT id, name, description FROM node_groups ORDER BY id")]

    def ensure_group(self, name: str, description: str = "") -> int:
        self.db.execute("INSERT OR IGNORE INTO node_groups (name, description) VALUES (?, ?)", (name, description))
        return int(self.db.execute("SELECT id FROM node_groups WHERE name = ?", (name,)).fetchone()[0])

    def seed_member(self, group_id: int, node: str) -> None:
        """A membership headnode.yaml declares: added unless it exists (or was removed on purpose)."""
        self.db.execute("INSERT OR IGNORE INTO node_group_members (group_id, node) VALUES (?, ?)", (group_id, node))

    def set_member(self, group_id: int, node: str, member: bool) -> None:
        self.db.execute("INSERT INTO node_group_members (group_id, node, removed) VALUES (?, ?, ?) "
                        "ON CONFLICT(group_id, node) DO UPDATE SET removed=excluded.removed",
                        (group_id, node, 0 if member else 1))

    def delete_group(self, group_id: int) -> None:
        self.db.execute("DELETE FROM node_group_members WHERE group_id = ?", (group_id,))
        self.db.execute("DELETE FROM node_groups WHERE id = ?", (group_id,))

    # Job templates (schema 6).

    def templates(self) -> list[dict[str, Any]]:
        return [json.loads(data) for (data,) in self.db.execute("SELECT data FROM job_templates ORDER BY name")]

    def save_template(self, name: str, data: dict[str, Any]) -> None:
        with self.transaction():
            self.db.execute("INSERT INTO job_templates (name, data) VALUES (?, ?) "
                            "ON CONFLICT(name) DO UPDATE SET name=excluded.name, data=excluded.data",
                            (name, _dump(data)))

    def delete_template(self, name: str) -> bool:
        with self.transaction():
            deleted: int = self.db.execute("DELETE FROM job_templates WHERE name = ?", (name,)).rowcount
        return deleted > 0

    def properties(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, value FROM cluster_properties").fetchall())

    def set_property(self, name: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT INTO cluster_properties (name, value) VALUES (?, ?) "
                            "ON CONFLICT(name) DO UPDATE SET value=excluded.value", (name, value))


@dataclass(frozen=True)
class JobQuery:
    """Get-HpcJob's filters, as SQL on the jobs table."""

    states: tuple[int, ...]
    limit: int
    after: int = 0
    owner: str | None = None  # lower case
    begin: float | None = None  # submitted at or after
    end: float | None = None  # submitted at or before
    texts: tuple[tuple[str, str], ...] = ()  # (field, lower-case value): name, project, template
    nodes: tuple[str, ...] = ()  # lower case: jobs allocated any of them

    def sql(self) -> tuple[str, list[Any]]:
        clauses = [f"state IN ({','.join('?' * len(self.states))})" if self.states else "0", "id > ?"]
        values: list[Any] = [*self.states, self.after]
        if self.owner is not None:
            clauses.append("lower(owner) = ?")
            values.append(self.owner)
        for op, bound in ((">=", self.begin), ("<=", self.end)):
            if bound is not None:
                clauses.append(f"json_extract(data, '$.submit_time') {op} ?")
                values.append(bound)
        for name, value in self.texts:
            clauses.append(f"lower(json_extract(data, '$.{name}')) = ?")
            values.append(value)
        if self.nodes:
            clauses.append(f"id IN (SELECT job_id FROM allocations WHERE lower(node) IN "
                           f"({','.join('?' * len(self.nodes))}))")
            values += self.nodes
        return " AND ".join(clauses), values


@dataclass
class Rows:
    """Changes of many jobs gathered in memory, for Store.write: the jobs (with the state each is
    expected to have in the store), the tasks they changed and their history rows, in order."""

    jobs: list[tuple[Job, int | None]] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)


_UPDATE_JOB = "UPDATE jobs SET state=?, end_time=?, data=? WHERE id=? AND state IN (?, ?)"
_UPDATE_TASK = "UPDATE tasks SET state=?, data=? WHERE job_id=? AND task_id=? AND sub_id=? AND state IN (?, ?)"
_INSERT_HISTORY = "INSERT INTO history (job_id, time, actor, event, message, details) VALUES (?,?,?,?,?,?)"


def _job_values(job: Job, expected: int | None) -> tuple[Any, ...]:
    """_UPDATE_JOB's values: the job as it is, where its stored state is `expected` (default: the one it left)."""
    expected = int(job.previous_state) if expected is None else expected
    return int(job.state), job.end_time, _dump(job.to_row()), job.id, expected, int(job.state)


def _task_values(task: Task, expected: int | None) -> tuple[Any, ...]:
    expected = int(task.previous_state) if expected is None else expected
    return (int(task.state), _dump(task.to_row()), task.job_id, task.task_id, task.sub_id, expected,
            int(task.state))


class Transaction:
    """A plain context manager (not a generator one): the head node opens several per change."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store._begin()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.store._end(ok=kind is None)

