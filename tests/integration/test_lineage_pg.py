#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Column lineage (sql/lineage.h) checked against a real PostgreSQL 15 (issue 13).

A private cluster holds tables whose text values each carry a marker naming their column
(`PV.people.ssn.3`), and views over them. The catalog is read from the server the way the
proxy will (pg_class, pg_attribute, pg_get_viewdef), handed to lineage_probe with a bypass
corpus (alias, function, cast, concatenation, sub-query, CTE, recursive CTE, UNION, `*`,
`t.*`, whole-row, views, JOIN USING, LATERAL, unnest, VALUES, RETURNING, COPY TO STDOUT, a
cursor), and every statement is run with psycopg2. For each result column:
- the traced name is the name in the server's RowDescription;
- where the RowDescription names a table column (table OID, attribute number), that column
  is among the traced sources;
- every marker found in any of its values names a column among the traced sources: no
  value reaches the client from a column the tracer did not report.

Exit codes: 0 pass, 1 fail, 77 skip (not root: the cluster runs as the postgres user).
"""

import argparse
import io
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pg_cluster import PgCluster, log, skip_or_fail  # noqa: E402

import psycopg2  # noqa: E402

SETUP = """
CREATE SCHEMA hr;
CREATE TABLE people (id int PRIMARY KEY, name text, ssn text, email text, manager_id int);
CREATE TABLE orders (id int PRIMARY KEY, person_id int, note text);
CREATE TABLE hr.salaries (id int PRIMARY KEY, person_id int, grade text);
INSERT INTO people SELECT i, 'PV.people.name.' || i, 'PV.people.ssn.' || i,
       'PV.people.email.' || i, CASE WHEN i > 1 THEN i - 1 END FROM generate_series(1, 4) i;
INSERT INTO orders SELECT i, 1 + i % 4, 'PV.orders.note.' || i FROM generate_series(1, 6) i;
INSERT INTO hr.salaries SELECT i, i, 'PV.salaries.grade.' || i FROM generate_series(1, 4) i;
CREATE VIEW people_v AS SELECT id, upper(name) AS uname, ssn FROM people;
CREATE VIEW people_vv AS SELECT v.id, v.ssn AS tax_id FROM people_v v WHERE v.id > 1;
CREATE VIEW renamed (a, b) AS SELECT id, ssn || '' FROM people;
CREATE VIEW staff AS SELECT p.name, s.grade FROM people p JOIN hr.salaries s ON s.person_id = p.id;
"""

CATALOG_SQL = """
SELECT n.nspname, c.relname, c.relkind IN ('v', 'm'),
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
       array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
             AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'hr') AND c.relkind IN ('r', 'v', 'm', 'p')
"""

# (statement, how to run it): "query" returns rows, "copy" is COPY ... TO STDOUT,
# "cursor" is DECLARE (its rows are FETCHed), "rollback" runs inside a rolled-back transaction.
CORPUS = [
    ("SELECT ssn AS s, p.name AS n, email FROM people p", "query"),
    ("SELECT upper(ssn), ssn::varchar(20), CAST(name AS text), 'x' || email || 'y' FROM people",
     "query"),
    ("SELECT CASE WHEN id > 2 THEN ssn ELSE name END, coalesce(NULL, email), "
     "substring(ssn from 4), left(name, 10) AS l FROM people", "query"),
    ("SELECT (SELECT ssn FROM people q WHERE q.id = o.person_id), o.note FROM orders o", "query"),
    ("SELECT x.a, x.b FROM (SELECT email AS a, upper(name) AS b FROM people) x", "query"),
    ("WITH c AS (SELECT ssn, name FROM people) SELECT c.ssn || c.name AS both FROM c", "query"),
    ("WITH RECURSIVE r(id, chain) AS (SELECT id, name FROM people WHERE manager_id IS NULL "
     "UNION ALL SELECT p.id, r.chain || '>' || p.ssn FROM people p JOIN r ON p.manager_id = r.id) "
     "SELECT * FROM r", "query"),
    ("SELECT name FROM people UNION ALL SELECT note FROM orders UNION SELECT grade FROM hr.salaries",
     "query"),
    ("SELECT ssn FROM people INTERSECT SELECT ssn FROM people_v", "query"),
    ("SELECT * FROM people", "query"),
    ("SELECT o.*, p.* FROM orders o JOIN people p ON p.id = o.person_id", "query"),
    ("SELECT p, p::text AS t, row_to_json(p) AS j, to_jsonb(o.*) AS k FROM people p, orders o",
     "query"),
    ("SELECT * FROM people_v", "query"),
    ("SELECT tax_id, id FROM people_vv", "query"),
    ("SELECT b, a FROM renamed", "query"),
    ("SELECT * FROM staff", "query"),
    ("SELECT * FROM people JOIN orders USING (id)", "query"),
    ("SELECT * FROM orders NATURAL JOIN hr.salaries", "query"),
    ("SELECT p.id, x.* FROM people p, LATERAL (SELECT o.note, p.ssn FROM orders o "
     "WHERE o.person_id = p.id) x", "query"),
    ("SELECT u, t.n FROM people p, unnest(ARRAY[p.ssn, p.email]) AS u, "
     "generate_series(1, 2) WITH ORDINALITY AS t(g, n)", "query"),
    ("SELECT e.key, e.value FROM people p, jsonb_each_text(to_jsonb(p)) e", "query"),
    ("VALUES (1, (SELECT max(ssn) FROM people)), (2, 'x')", "query"),
    ("SELECT string_agg(ssn, ',' ORDER BY id), count(*), max(email) FROM people GROUP BY manager_id "
     "IS NULL", "query"),
    ("SELECT name, rank() OVER (ORDER BY ssn) FROM people", "query"),
    ("SELECT ARRAY(SELECT note FROM orders), EXISTS (SELECT 1 FROM people WHERE ssn LIKE 'PV%')",
     "query"),
    ("SELECT grade, salaries.id FROM hr.salaries", "query"),
    ("SELECT (p).*, (SELECT q FROM people q LIMIT 1) AS one FROM people p", "query"),
    ("SELECT jsonb_agg(p), string_agg(format('%s-%s', name, ssn), ','), "
     "array_agg(email) FILTER (WHERE id > 1) "
     "FROM people p", "query"),
    ("SELECT t.* FROM (SELECT ssn, note FROM people, orders) t(a)", "query"),
    ("SELECT * FROM people_v JOIN people_vv USING (id)", "query"),
    ("SELECT regexp_matches(ssn, '[0-9]+'), x FROM people p2, LATERAL (SELECT p2) x(p2)",
     "query"),
    ("SELECT * FROM people, LATERAL unnest(ARRAY[ssn, name]) WITH ORDINALITY", "query"),
    ("SELECT * FROM (people p JOIN orders o ON o.person_id = p.id) j", "query"),
    # Default names: PostgreSQL's FigureColname.
    ("SELECT (SELECT 1), (SELECT ssn FROM people LIMIT 1), CASE WHEN true THEN 1 ELSE (SELECT 2) "
     "END, CASE WHEN id > 0 THEN name END, ARRAY(SELECT 1 AS x), 1::text, id::int, -id, "
     "(SELECT name FROM people UNION SELECT note FROM orders LIMIT 1), ROW(1, 2), ARRAY[ssn], "
     "greatest(1, 2), nullif(ssn, ''), current_user, count(*) OVER (), ssn IS NULL, "
     "(ARRAY[email])[1], email COLLATE \"C\", 'a' AS \"Quoted\" FROM people", "query"),
    ("TABLE hr.salaries", "query"),
    ("SHOW search_path", "query"),
    ("SHOW ALL", "query"),
    ("EXPLAIN SELECT ssn FROM people WHERE email LIKE 'PV%'", "query"),
    ("UPDATE orders o SET note = p.ssn FROM people p WHERE p.id = o.person_id "
     "RETURNING o.note, p.email", "rollback"),
    ("INSERT INTO orders (id, person_id, note) SELECT 100 + id, id, name || ssn FROM people "
     "RETURNING *", "rollback"),
    ("DELETE FROM people WHERE id = 4 RETURNING ssn AS gone, name", "rollback"),
    ("WITH d AS (DELETE FROM orders WHERE id < 3 RETURNING note) SELECT upper(note) FROM d",
     "rollback"),
    ("COPY (SELECT ssn, name || email FROM people) TO STDOUT", "copy"),
    ("COPY people (email, ssn) TO STDOUT", "copy"),
    ("COPY hr.salaries TO STDOUT WITH (FORMAT csv)", "copy"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT ssn AS s, note FROM people, orders", "cursor"),
]

MARKER = re.compile(r"PV\.([a-z]+)\.([a-z_]+)\.\d+", re.I)  # upper() keeps it
SCHEMA_OF = {"people": "public", "orders": "public", "salaries": "hr"}


def read_catalog(conn):
    with conn.cursor() as cur:
        cur.execute(CATALOG_SQL)
        relations = [{"schema": s, "name": n, "is_view": v, "view_definition": d or "",
                      "columns": list(cols)} for s, n, v, d, cols in cur.fetchall()]
        cur.execute("SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname IN "
                    "('public', 'hr')")
        tables = {oid: (s, n) for oid, s, n in cur.fetchall()}
    conn.rollback()
    return relations, tables


def run_statement(conn, sql, how):
    """Returns (names or None, rows as lists of text or None)."""
    with conn.cursor() as cur:
        if how == "copy":
            buf = io.StringIO()
            cur.copy_expert(sql, buf)
            sep = "," if "csv" in sql.lower() else "\t"
            rows = [line.split(sep) for line in buf.getvalue().splitlines()]
            conn.rollback()
            return None, None, rows
        if how == "cursor":
            cur.execute(sql)
            cur.execute("FETCH ALL FROM c")
            desc = cur.description
            rows = cur.fetchall()
            cur.execute("CLOSE c")
            conn.commit()
        else:
            cur.execute(sql)
            desc = cur.description
            rows = cur.fetchall()
            conn.rollback()
    names = [d.name for d in desc]
    origins = [(d.table_oid, d.table_column) for d in desc]
    return names, origins, [[str(v) for v in row] for row in rows]


def check(sql, lineage, names, origins, rows, attnames, tables):
    problems = []
    if not lineage["traced"]:
        return [f"not traced: {lineage['why']}"]
    cols = lineage["columns"]
    width = len(names) if names is not None else (len(rows[0]) if rows else len(cols))
    if len(cols) != width:
        return [f"{len(cols)} traced columns, the server sent {width}"]
    for i, col in enumerate(cols):
        sources = set(col["sources"])
        if names is not None and col["name"] != names[i]:
            problems.append(f"column {i}: traced name {col['name']!r}, server's {names[i]!r}")
        if origins is not None and origins[i][0] in tables and origins[i][1]:
            schema, table = tables[origins[i][0]]
            ref = f"{schema}.{table}.{attnames[(schema, table)][origins[i][1] - 1]}"
            if ref not in sources:
                problems.append(f"column {i}: RowDescription says {ref}, traced {sorted(sources)}")
        seen = set()
        for row in rows:
            for t, c in MARKER.findall(row[i]):
                t, c = t.lower(), c.lower()
                seen.add(f"{SCHEMA_OF[t]}.{t}.{c}")
        missing = seen - sources
        if missing:
            problems.append(f"column {i} ({col['name']}): values from {sorted(missing)} "
                            f"not among traced sources {sorted(sources)}")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", required=True, help="lineage_probe executable")
    args = ap.parse_args()
    if os.geteuid() != 0:
        return skip_or_fail("needs root to run a private PostgreSQL as the postgres user")
    with PgCluster() as cluster:
        cluster.setup_sql(SETUP)
        conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                                dbname="postgres")
        try:
            relations, tables = read_catalog(conn)
            attnames = {(r["schema"], r["name"]): r["columns"] for r in relations}
            probe_in = {"search_path": ["public"], "relations": relations,
                        "statements": [sql for sql, _ in CORPUS]}
            out = subprocess.run([args.probe], input=json.dumps(probe_in), text=True,
                                 stdout=subprocess.PIPE, check=True, timeout=60).stdout
            lineages = [json.loads(line) for line in out.splitlines()]
            assert len(lineages) == len(CORPUS)
            failures = 0
            for (sql, how), lineage in zip(CORPUS, lineages):
                names, origins, rows = run_statement(conn, sql, how)
                problems = check(sql, lineage, names, origins, rows, attnames, tables)
                if problems:
                    failures += 1
                    print(f"FAIL {sql}")
                    for p in problems:
                        print(f"    {p}")
                else:
                    log(f"ok ({len(rows)} rows) {sql[:90]}")
        finally:
            conn.close()
    if failures:
        print(f"FAIL: {failures} of {len(CORPUS)} statements")
        return 1
    print(f"PASS: {len(CORPUS)} statements traced as the server ran them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
