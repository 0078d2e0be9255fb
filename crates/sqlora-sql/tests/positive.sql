-- # Valid read queries over the shop fixture: the guard must accept each one and
-- # execution must succeed. Entries are separated by a line "-- ---".
SELECT * FROM customers
-- ---
SELECT name, city FROM customers WHERE city = 'Oslo' ORDER BY name LIMIT 5
-- ---
SELECT c.name, count(o.order_id) AS n_orders
FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id
GROUP BY c.customer_id
HAVING n_orders > 2
ORDER BY n_orders DESC
-- ---
SELECT customers.name FROM customers JOIN orders USING (customer_id) WHERE orders.total > 100
-- ---
SELECT p.category, sum(oi.quantity * oi.unit_price) AS revenue
FROM order_items AS oi
JOIN products AS p ON p.product_id = oi.product_id
GROUP BY p.category
ORDER BY revenue DESC
-- ---
WITH big AS (SELECT order_id, total FROM orders WHERE total > 50)
SELECT count(*) FROM big
-- ---
WITH spend(cid, amount) AS (SELECT customer_id, sum(total) FROM orders GROUP BY customer_id)
SELECT c.name, s.amount FROM customers c JOIN spend s ON s.cid = c.customer_id ORDER BY s.amount DESC LIMIT 3
-- ---
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT sum(i) FROM n
-- ---
SELECT t.city, t.cnt FROM (SELECT city, count(*) AS cnt FROM customers GROUP BY city) AS t WHERE t.cnt > 1
-- ---
SELECT * FROM (SELECT customer_id AS id, name FROM customers) sub WHERE sub.id < 5
-- ---
SELECT name FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE status = 'cancelled')
-- ---
SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id AND o.total > 100)
-- ---
SELECT name, (SELECT count(*) FROM orders o WHERE o.customer_id = customers.customer_id) AS n FROM customers
-- ---
SELECT order_id, total, rank() OVER (PARTITION BY customer_id ORDER BY total DESC) AS rnk FROM orders
-- ---
SELECT order_id, sum(total) OVER w AS running FROM orders WINDOW w AS (ORDER BY order_date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
-- ---
SELECT name, CASE WHEN price > 20 THEN 'expensive' WHEN price > 10 THEN 'mid' ELSE 'cheap' END AS band FROM products
-- ---
SELECT city FROM customers UNION SELECT category FROM products ORDER BY city
-- ---
SELECT customer_id FROM customers INTERSECT SELECT customer_id FROM orders
-- ---
SELECT customer_id FROM customers EXCEPT SELECT customer_id FROM orders ORDER BY 1
-- ---
SELECT strftime('%Y-%m', order_date) AS month, count(*) FROM orders GROUP BY month ORDER BY month
-- ---
SELECT count(*) FROM orders WHERE order_date >= date('now', '-30 day')
-- ---
SELECT order_id, julianday('2025-01-01') - julianday(order_date) AS age_days FROM orders ORDER BY age_days LIMIT 3
-- ---
SELECT "name", [city], `email` FROM "customers" WHERE "city" IS NOT NULL
-- ---
SELECT name FROM customers WHERE city = "Oslo"
-- ---
SELECT C.NAME FROM CUSTOMERS C WHERE C.CITY = 'Rome'
-- ---
SELECT o.*, c.name FROM orders o JOIN customers c ON c.customer_id = o.customer_id LIMIT 2
-- ---
SELECT DISTINCT category FROM products ORDER BY category
-- ---
SELECT avg(price), min(price), max(price), total(price) FROM products
-- ---
SELECT coalesce(city, 'unknown') AS city, count(*) FROM customers GROUP BY 1
-- ---
SELECT name FROM products WHERE name LIKE 'Product 1%' AND price BETWEEN 1 AND 30
-- ---
SELECT rowid, name FROM customers WHERE rowid = 3
-- ---
SELECT group_concat(name, ', ') FROM products WHERE category = 'tools'
-- ---
SELECT p.name, oi.quantity FROM products p, order_items oi WHERE p.product_id = oi.product_id AND oi.quantity > 3
-- ---
SELECT name FROM sqlite_master WHERE type = 'table'
-- ---
SELECT cast(total AS INTEGER) AS whole, upper(status) FROM orders WHERE total IS NOT NULL LIMIT 5
-- ---
SELECT o.order_id FROM orders o WHERE o.total > (SELECT avg(total) FROM orders)
-- ---
SELECT value FROM json_each('[1, 2, 3]')
-- ---
VALUES (1, 'a'), (2, 'b')
-- ---
SELECT name AS n FROM customers WHERE n LIKE 'C%' ORDER BY n
-- ---
SELECT count(*) FROM main.orders
-- ---
SELECT 1; -- trailing comment
-- ---
/* a comment that says DROP TABLE customers */ SELECT count(*) FROM customers;
-- ---
SELECT length(zeroblob(10)), hex(randomblob(4)) IS NOT NULL
-- ---
SELECT c.city, count(DISTINCT o.order_id) FILTER (WHERE o.status = 'shipped') AS shipped FROM customers c JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.city
-- ---
SELECT x.n FROM (SELECT count(*) AS n FROM orders) x
-- ---
SELECT CURRENT_DATE, CURRENT_TIMESTAMP
-- ---
SELECT iif(total > 100, 'big', 'small') AS size, count(*) FROM orders GROUP BY size
-- ---
SELECT T1.name FROM customers AS T1 JOIN orders AS T2 ON T1.customer_id = T2.customer_id WHERE T2.status = "shipped"
-- ---
SELECT count(*) FROM (SELECT * FROM orders)
-- ---
SELECT name FROM customers ORDER BY (SELECT count(*) FROM orders WHERE orders.customer_id = customers.customer_id) DESC
-- ---
SELECT name, order_id FROM customers NATURAL JOIN orders LIMIT 3
-- ---
SELECT a.name FROM customers a WHERE a.customer_id NOT IN (SELECT customer_id FROM orders)
-- ---
SELECT count(DISTINCT city) FROM customers WHERE city LIKE '%o%' COLLATE NOCASE
-- ---
SELECT max(total) AS m FROM orders GROUP BY customer_id ORDER BY m DESC
-- ---
SELECT customer_id, count(*) FROM orders GROUP BY customer_id HAVING count(*) > (SELECT avg(c) FROM (SELECT count(*) AS c FROM orders GROUP BY customer_id))
-- ---
SELECT e.value FROM products p, json_each('["a","b"]') e WHERE p.product_id = 1
-- ---
SELECT o.order_id, oi.product_id FROM orders o LEFT JOIN order_items oi ON oi.order_id = o.order_id AND oi.quantity > 1
-- ---
WITH a AS (SELECT customer_id, total FROM orders), b AS (SELECT customer_id, sum(total) AS s FROM a GROUP BY customer_id)
SELECT c.name, b.s FROM b JOIN customers c ON c.customer_id = b.customer_id
-- ---
WITH a AS (SELECT * FROM orders) SELECT x.order_id FROM (SELECT order_id FROM a) x
-- ---
SELECT "customers"."name" FROM "customers" WHERE "customers"."city" IS "Oslo"
-- ---
SELECT DISTINCT T1.name FROM products AS T1 JOIN order_items AS T2 ON T1.product_id = T2.product_id WHERE T2.quantity > (SELECT avg(quantity) FROM order_items)
-- ---
SELECT t.* FROM (SELECT 1 AS a) t
-- ---
SELECT cnt FROM (SELECT count(*) AS cnt FROM orders)
-- ---
SELECT name FROM customers WHERE customer_id IN (1, 2, 3) ORDER BY name ASC LIMIT 1 OFFSET 2
-- ---
SELECT c.name, o.order_id FROM customers c RIGHT JOIN orders o ON o.customer_id = c.customer_id LIMIT 2
-- ---
SELECT count(*) AS "Number of orders" FROM orders
-- ---
SELECT o.order_id FROM orders o ORDER BY o.total DESC NULLS LAST
-- ---
SELECT c1.name, c2.name FROM customers c1, customers c2 WHERE c1.city = c2.city AND c1.customer_id < c2.customer_id
-- ---
WITH t AS (SELECT o.*, c.name FROM orders o JOIN customers c USING (customer_id)) SELECT name, total FROM t
-- ---
WITH RECURSIVE cnt AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM cnt WHERE x < 5) SELECT x FROM cnt
-- ---
SELECT status, count(*) AS n FROM orders GROUP BY status HAVING n > 10 ORDER BY n
-- ---
SELECT name FROM products WHERE price = (SELECT max(price) FROM products)
-- ---
select p.name from products p where p.category = 'toys' order by p.price desc limit 1
-- ---
SELECT city FROM customers GROUP BY city HAVING count(*) >= 2 UNION ALL SELECT 'none'
-- ---
SELECT name FROM customers WHERE signup_date < '2023-06-01' AND (city = 'Oslo' OR city IS NULL)
-- ---
SELECT abs(-1), round(2.567, 1), substr(name, 1, 3), instr(name, ' '), trim(name), typeof(total) FROM customers, orders LIMIT 1
