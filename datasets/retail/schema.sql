-- Online shop. Money columns are REAL amounts in US dollars with 2 decimals.
-- Dates are TEXT 'YYYY-MM-DD'; order timestamps are TEXT 'YYYY-MM-DD HH:MM:SS'.
CREATE TABLE categories (
    category_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    parent_category_id INTEGER REFERENCES categories (category_id) -- NULL for top-level categories
);

CREATE TABLE suppliers (
    supplier_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    city TEXT NOT NULL,
    contact_email TEXT -- NULL when unknown
);

CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category_id INTEGER NOT NULL REFERENCES categories (category_id),
    unit_price REAL NOT NULL, -- current list price, USD
    stock_quantity INTEGER NOT NULL,
    added_date TEXT NOT NULL,
    discontinued INTEGER NOT NULL DEFAULT 0 -- 1 = no longer sold
);

CREATE TABLE product_suppliers (
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    supplier_id INTEGER NOT NULL REFERENCES suppliers (supplier_id),
    supply_cost REAL NOT NULL, -- what the shop pays per unit, USD
    lead_time_days INTEGER NOT NULL,
    PRIMARY KEY (product_id, supplier_id)
);

CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    city TEXT NOT NULL,
    country TEXT NOT NULL,
    signup_date TEXT NOT NULL,
    loyalty_tier TEXT -- 'Bronze', 'Silver', 'Gold' or NULL when not enrolled
);

CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    order_date TEXT NOT NULL, -- 'YYYY-MM-DD HH:MM:SS'
    status TEXT NOT NULL, -- 'pending', 'shipped', 'delivered', 'cancelled', 'returned'
    shipped_date TEXT, -- NULL when not shipped (pending or cancelled)
    shipping_city TEXT NOT NULL,
    discount_code TEXT, -- NULL when no code was used
    total_amount REAL NOT NULL -- sum of the order's line amounts after line discounts, USD
);

CREATE TABLE order_items (
    order_item_id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL, -- price paid per unit at order time, USD
    discount_pct INTEGER -- percentage off this line (e.g. 10), NULL when none
);

CREATE TABLE reviews (
    review_id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    rating INTEGER NOT NULL, -- 1 to 5 stars
    review_date TEXT NOT NULL,
    comment TEXT -- NULL when the customer left only a rating
);
