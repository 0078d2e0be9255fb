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
