-- # Adversarial corpus for the guard. Entries are separated by a line "-- ---".
-- # "-- expect: code[|code]" is the GuardCode the guard must return; "timeout" means the
-- # guard accepts it and the time budget must stop it; "exec_error" means the guard accepts
-- # it and SQLite's limits must refuse it. "-- flag: writes" marks statements that try to
-- # change state: the raw read-only connection must fail them even without the authorizer.
-- # "-- flag: harmless" marks entries the raw connection may run (pure reads, no-ops).
-- # "{dir}" is replaced by the test's temp dir.
-- expect: multiple_statements
-- flag: writes
SELECT 1 /* */; DROP TABLE customers
-- ---
-- expect: multiple_statements
-- flag: writes
SELECT 1 -- comment hides nothing
; DELETE FROM orders
-- ---
-- expect: multiple_statements
-- flag: writes
SELECT 1;;DROP TABLE orders
-- ---
-- expect: multiple_statements
-- flag: writes
SELECT 'a;b'; DELETE FROM orders
-- ---
-- expect: multiple_statements
-- flag: writes
SELECT "x"; DROP TABLE orders
-- ---
-- expect: multiple_statements
-- flag: writes
sElEcT 1;
	dRoP	tAbLe customers
-- ---
-- expect: multiple_statements
-- flag: writes
SELECT * FROM main.sqlite_master; UPDATE sqlite_master SET sql = ''
-- ---
-- expect: multiple_statements
-- flag: harmless
SELECT 1; SELECT 2
-- ---
-- expect: multiple_statements
-- flag: writes
SELECT 1 /* ; */ ; /* x */ INSERT INTO customers (customer_id, name) VALUES (999, 'x')
-- ---
-- expect: ddl
-- flag: writes
/* leading comment */ DROP TABLE customers
-- ---
-- expect: not_read_only
-- flag: writes
dElEtE FROM orders
-- ---
-- expect: not_read_only
-- flag: writes
	DELETE
FROM	orders
-- ---
-- expect: not_read_only
-- flag: writes
DELETE FROM customers WHERE 1 = 1
-- ---
-- expect: not_read_only
-- flag: writes
DELETE FROM orders RETURNING *
-- ---
-- expect: not_read_only
-- flag: writes
WITH x AS (SELECT 1) DELETE FROM orders
-- ---
-- expect: not_read_only
-- flag: writes
WITH x AS (SELECT order_id FROM orders) INSERT INTO orders SELECT * FROM orders
-- ---
-- expect: not_read_only
-- flag: writes
WITH x AS (SELECT 1) UPDATE orders SET total = 0
-- ---
-- expect: not_read_only
-- flag: writes
WITH RECURSIVE x(n) AS (SELECT 1) REPLACE INTO customers (customer_id, name) VALUES (1, 'x')
-- ---
-- expect: not_read_only|parse
-- flag: writes
WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x
-- ---
-- expect: not_read_only
-- flag: writes
UPDATE sqlite_master SET sql = 'CREATE TABLE customers (x)' WHERE name = 'customers'
-- ---
-- expect: not_read_only
-- flag: writes
INSERT INTO sqlite_master VALUES ('table', 'x', 'x', 0, 'CREATE TABLE x(a)')
-- ---
-- expect: not_read_only
-- flag: writes
DELETE FROM sqlite_master
-- ---
-- expect: not_read_only
-- flag: writes
REPLACE INTO customers (customer_id, name) VALUES (1, 'x')
-- ---
-- expect: not_read_only
-- flag: writes
INSERT OR IGNORE INTO customers (customer_id, name) VALUES (1, 'x')
-- ---
-- expect: not_read_only
-- flag: writes
INSERT INTO customers (customer_id, name) VALUES (1, 'x') ON CONFLICT (customer_id) DO UPDATE SET name = 'y'
-- ---
-- expect: not_read_only
-- flag: writes
INSERT INTO orders SELECT * FROM orders
-- ---
-- expect: not_read_only
-- flag: writes
INSERT INTO customers DEFAULT VALUES
-- ---
-- expect: not_read_only
-- flag: writes
UPDATE customers SET name = 'x'
-- ---
-- expect: not_read_only
-- flag: writes
UPDATE OR REPLACE customers SET customer_id = 1
-- ---
-- expect: not_read_only
EXPLAIN DELETE FROM orders
-- ---
-- expect: not_read_only|parse
SELECT * INTO backup FROM customers
-- ---
-- expect: ddl
-- flag: writes
CREATE TEMP TABLE t AS SELECT * FROM customers
-- ---
-- expect: ddl
-- flag: writes
CREATE TEMPORARY VIEW v AS SELECT 1
-- ---
-- expect: ddl
-- flag: writes
CREATE TEMP TRIGGER tr AFTER INSERT ON customers BEGIN DELETE FROM orders; END
-- ---
-- expect: ddl
-- flag: writes
CREATE TABLE evil (x)
-- ---
-- expect: ddl
-- flag: writes
CREATE INDEX i ON customers (name)
-- ---
-- expect: ddl
-- flag: writes
CREATE VIRTUAL TABLE v USING fts5(x)
-- ---
-- expect: ddl
-- flag: writes
DROP TABLE customers
-- ---
-- expect: ddl
-- # a no-op for SQLite (no such view), still refused by the guard
-- flag: harmless
DROP VIEW IF EXISTS v
-- ---
-- expect: ddl
-- flag: writes
DROP TABLE IF EXISTS orders
-- ---
-- expect: ddl
-- flag: writes
ALTER TABLE customers ADD COLUMN evil TEXT
-- ---
-- expect: ddl
-- flag: writes
ALTER TABLE customers RENAME TO c2
-- ---
-- expect: ddl
-- flag: writes
REINDEX
-- ---
-- expect: ddl
-- flag: writes
ANALYZE
-- ---
-- expect: vacuum
-- flag: writes
VACUUM
-- ---
-- expect: vacuum
-- flag: writes
VACUUM INTO '{dir}/copy.db'
-- ---
-- expect: attach
-- flag: writes
ATTACH DATABASE '{dir}/evil.db' AS evil
-- ---
-- expect: attach
-- flag: writes
ATTACH ':memory:' AS m
-- ---
-- expect: attach
-- flag: writes
ATTACH 'file:{dir}/evil2.db?mode=rwc' AS e
-- ---
-- expect: attach
-- flag: writes
attach
'{dir}/evil3.db'
as evil3
-- ---
-- expect: attach
DETACH DATABASE main
-- ---
-- expect: transaction
-- flag: writes
BEGIN; DELETE FROM orders; COMMIT
-- ---
-- expect: transaction
BEGIN IMMEDIATE
-- ---
-- expect: transaction
COMMIT
-- ---
-- expect: transaction
ROLLBACK
-- ---
-- expect: transaction
SAVEPOINT sp1
-- ---
-- expect: transaction
RELEASE sp1
-- ---
-- expect: transaction
END TRANSACTION
-- ---
-- expect: pragma
PRAGMA writable_schema = ON
-- ---
-- expect: pragma
-- flag: writes
PRAGMA writable_schema = 1; UPDATE sqlite_master SET sql = '' WHERE name = 'orders'
-- ---
-- expect: pragma
PRAGMA table_info(customers)
-- ---
-- expect: pragma
PRAGMA query_only = OFF
-- ---
-- expect: pragma
PRAGMA journal_mode = WAL
-- ---
-- expect: pragma
-- flag: harmless
SELECT * FROM pragma_table_info('customers')
-- ---
-- expect: pragma
-- flag: harmless
SELECT name FROM pragma_database_list
-- ---
-- expect: pragma
-- flag: harmless
SELECT * FROM main.pragma_table_info('orders')
-- ---
-- expect: pragma
-- flag: harmless
SELECT c.name FROM customers c WHERE c.name IN (SELECT name FROM pragma_function_list)
-- ---
-- expect: dangerous_function
SELECT load_extension('x')
-- ---
-- expect: dangerous_function
SELECT load_extension('/tmp/evil.so', 'sqlite3_evil_init')
-- ---
-- expect: dangerous_function
SELECT * FROM customers WHERE load_extension('x') IS NULL
-- ---
-- expect: dangerous_function
SELECT (SELECT LOAD_EXTENSION('x'))
-- ---
-- expect: dangerous_function
SELECT 1 UNION SELECT load_extension('x')
-- ---
-- expect: dangerous_function
SELECT * FROM customers c JOIN orders o ON load_extension('x') IS NULL
-- ---
-- expect: dangerous_function
SELECT max(1) OVER (PARTITION BY load_extension('x')) FROM customers
-- ---
-- expect: dangerous_function
WITH a AS (SELECT load_extension('x') AS v) SELECT v FROM a
-- ---
-- expect: dangerous_function
SELECT readfile('/etc/passwd')
-- ---
-- expect: dangerous_function
SELECT * FROM (SELECT readfile('/etc/hostname') AS r)
-- ---
-- expect: dangerous_function
SELECT writefile('{dir}/x.bin', 'payload')
-- ---
-- expect: dangerous_function
SELECT CASE WHEN 1 THEN writefile('{dir}/f.bin', 'x') END
-- ---
-- expect: dangerous_function
SELECT edit('x')
-- ---
-- expect: dangerous_function
SELECT fts3_tokenizer('simple')
-- ---
-- expect: dangerous_function
SELECT * FROM sqlite_dbpage
-- ---
-- expect: dangerous_function
SELECT randomblob(1e9)
-- ---
-- expect: dangerous_function
SELECT zeroblob(1000000000)
-- ---
-- expect: dangerous_function
SELECT length(randomblob(2000000000))
-- ---
-- expect: exec_error
SELECT length(zeroblob(customer_id * 1000000000)) FROM customers
-- ---
-- expect: exec_error
-- # each step is small, the result exceeds SQLITE_LIMIT_LENGTH
SELECT length(replace(replace(hex(zeroblob(900000)), '0', '0000'), '0', '0000'))
-- ---
-- expect: timeout
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c
-- ---
-- expect: timeout
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n FROM r) SELECT max(n) FROM r
-- ---
-- expect: timeout
SELECT count(*) FROM customers a, customers b, customers c, customers d, customers e
-- ---
-- expect: timeout
SELECT count(*) FROM order_items a CROSS JOIN order_items b CROSS JOIN order_items c
-- ---
-- expect: empty
-- flag: harmless

-- ---
-- expect: empty
-- flag: harmless
   -- just a comment
-- ---
-- expect: empty
-- flag: harmless
;
-- ---
-- expect: unknown_table
SELECT * FROM secrets
-- ---
-- expect: unknown_column
SELECT password FROM customers
-- ---
-- expect: parse
SELECT * FROM customers WHERE
-- ---
-- expect: parse
SELECT 'unterminated
-- ---
-- expect: multiple_statements
-- flag: writes
-- # SQLite strings have no backslash escapes: the string ends at \'
SELECT 'a\'; DROP TABLE orders; --'
-- ---
-- expect: multiple_statements
-- flag: writes
-- # SQLite comments do not nest
SELECT 1 /* /* */ ; DROP TABLE orders; /* */
-- ---
-- expect: multiple_statements
-- flag: writes
SELECT [a;b] FROM (SELECT 1 AS [a;b]); DELETE FROM orders
-- ---
-- expect: dangerous_function
SELECT "load_extension"('x')
-- ---
-- expect: dangerous_function
SELECT [readfile]('/etc/passwd')
-- ---
-- expect: dangerous_function
SELECT count(*) FILTER (WHERE load_extension('x') IS NULL) FROM orders
-- ---
-- expect: dangerous_function
VALUES (load_extension('x'))
-- ---
-- expect: pragma
-- flag: harmless
SELECT * FROM "PRAGMA_TABLE_INFO"('customers')
-- ---
-- expect: accepted
-- flag: harmless
-- # SQLite and the guard agree: a comment may run to the end of input, so the DROP is inert
SELECT 1 /* unterminated ; DROP TABLE orders
