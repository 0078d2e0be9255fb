"""Generate datasets/retail/: an online shop (schema, data, question/SQL splits).

Deterministic: `python3 tools/datasets/gen_retail.py` rewrites the folder
byte-identically. Python 3.11 standard library only.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common_a import T, V, build_domain, date_v, month_v  # noqa: E402

SEED = 20240317

SCHEMA = """
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
"""

FIRST = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Sophie", "Mark", "Emma", "Paul", "Olivia",
    "Lukas", "Hannah", "Pierre", "Camille", "Marco", "Giulia", "Carlos", "Lucia", "Ahmed", "Fatima",
    "Hiroshi", "Yuki", "Raj", "Priya", "Liam", "Chloe", "Noah", "Ava", "Ethan", "Mia",
]
LAST = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts",
    "Schmidt", "Mueller", "Dubois", "Rossi", "Tanaka", "Patel", "Singh", "Kowalski", "Novak", "Jensen",
]
CITIES = [
    ("New York", "USA"), ("Chicago", "USA"), ("Austin", "USA"), ("Seattle", "USA"), ("Denver", "USA"),
    ("Boston", "USA"), ("Toronto", "Canada"), ("Vancouver", "Canada"), ("Montreal", "Canada"),
    ("London", "UK"), ("Manchester", "UK"), ("Edinburgh", "UK"), ("Berlin", "Germany"),
    ("Munich", "Germany"), ("Hamburg", "Germany"), ("Paris", "France"), ("Lyon", "France"),
    ("Madrid", "Spain"), ("Barcelona", "Spain"), ("Milan", "Italy"), ("Amsterdam", "Netherlands"),
    ("Dublin", "Ireland"), ("Sydney", "Australia"), ("Melbourne", "Australia"),
]
CITY_W = [9, 7, 5, 5, 4, 5, 6, 4, 3, 8, 4, 3, 6, 4, 3, 5, 3, 4, 3, 3, 4, 3, 4, 3]

CATEGORIES = [
    # (name, parent name or None)
    ("Electronics", None), ("Home & Kitchen", None), ("Sports & Outdoors", None), ("Clothing", None),
    ("Books", None),
    ("Laptops", "Electronics"), ("Audio", "Electronics"), ("Phones & Accessories", "Electronics"),
    ("Cookware", "Home & Kitchen"), ("Furniture", "Home & Kitchen"), ("Small Appliances", "Home & Kitchen"),
    ("Fitness", "Sports & Outdoors"), ("Camping", "Sports & Outdoors"), ("Cycling", "Sports & Outdoors"),
    ("Menswear", "Clothing"), ("Womenswear", "Clothing"), ("Footwear", "Clothing"),
    ("Fiction", "Books"), ("Cookbooks", "Books"),
]

PRODUCTS = {
    "Laptops": [("UltraBook 14 Pro", 1299.0), ("UltraBook 13 Air", 999.0), ("Gaming Laptop X17", 1899.0),
                ("Chromebook Flex 11", 329.0), ("WorkStation 16", 2199.0), ("StudentBook 15", 579.0)],
    "Audio": [("Wireless Noise-Cancelling Headphones", 249.99), ("Bluetooth Speaker Mini", 39.99),
              ("Wireless Earbuds Sport", 89.99), ("Studio Monitor Headphones", 149.0),
              ("Smart Speaker Home", 99.0), ("Portable Bluetooth Speaker XL", 129.99), ("USB Microphone Pro", 119.0)],
    "Phones & Accessories": [("Phone Case Slim", 19.99), ("USB-C Charging Cable 2m", 12.99),
                             ("Wireless Charging Pad", 29.99), ("Power Bank 20000mAh", 49.99),
                             ("Screen Protector Glass", 9.99), ("Car Phone Mount", 24.99), ("Smartphone Z5", 699.0)],
    "Cookware": [("Cast Iron Skillet 12in", 44.99), ("Nonstick Frying Pan 10in", 29.99),
                 ("Stainless Steel Pot Set", 189.0), ("Dutch Oven 6qt", 79.99), ("Chef Knife 8in", 59.99),
                 ("Bamboo Cutting Board", 24.99)],
    "Furniture": [("Oak Dining Table", 649.0), ("Ergonomic Office Chair", 279.0), ("Standing Desk Frame", 399.0),
                  ("Bookshelf 5-Tier", 119.0), ("Velvet Armchair", 349.0), ("Bedside Table", 89.0)],
    "Small Appliances": [("Espresso Machine", 449.0), ("Electric Kettle", 39.99), ("Blender 1200W", 89.99),
                         ("Air Fryer 5L", 119.99), ("Toaster 4-Slice", 49.99), ("Coffee Grinder", 34.99),
                         ("Stand Mixer", 329.0)],
    "Fitness": [("Yoga Mat", 29.99), ("Adjustable Dumbbells 25kg", 299.0), ("Resistance Bands Set", 24.99),
                ("Kettlebell 12kg", 54.99), ("Foam Roller", 19.99), ("Jump Rope Speed", 14.99),
                ("Exercise Bike", 549.0)],
    "Camping": [("Two-Person Tent", 159.0), ("Sleeping Bag 0C", 89.99), ("Camping Stove", 59.99),
                ("Headlamp 300 Lumen", 24.99), ("Insulated Water Bottle", 29.99), ("Hiking Backpack 40L", 139.0)],
    "Cycling": [("Road Bike Helmet", 79.99), ("Bike Lock U-Shape", 44.99), ("LED Bike Light Set", 34.99),
                ("Cycling Gloves", 22.99), ("Mini Bike Pump", 19.99)],
    "Menswear": [("Merino Wool Sweater", 89.0), ("Slim Fit Chinos", 59.0), ("Oxford Shirt", 49.0),
                 ("Rain Jacket", 129.0), ("Leather Belt", 35.0)],
    "Womenswear": [("Linen Summer Dress", 79.0), ("Cashmere Cardigan", 149.0), ("High-Waist Jeans", 69.0),
                   ("Silk Blouse", 99.0), ("Wool Coat", 229.0)],
    "Footwear": [("Running Shoes Air", 119.99), ("Leather Boots", 189.0), ("Canvas Sneakers", 54.99),
                 ("Trail Running Shoes", 139.99), ("Slippers Memory Foam", 29.99)],
    "Fiction": [("The Silent Harbor", 16.99), ("Midnight in Lisbon", 14.99), ("The Glass Orchard", 18.99),
                ("Northern Lights Trilogy", 39.99), ("A Map of Small Things", 15.99)],
    "Cookbooks": [("Everyday Italian Kitchen", 29.99), ("Plant-Based Basics", 24.99),
                  ("The Bread Book", 27.99), ("Fast Weeknight Dinners", 22.99)],
}

SUPPLIERS = [
    ("Acme Distribution", "USA", "Chicago"), ("Pacific Trade Co", "USA", "Seattle"),
    ("Northwind Traders", "USA", "Boston"), ("Maple Leaf Wholesale", "Canada", "Toronto"),
    ("Thames Supply Ltd", "UK", "London"), ("Rhein Handel GmbH", "Germany", "Cologne"),
    ("Bavaria Goods GmbH", "Germany", "Munich"), ("Lumiere Import", "France", "Paris"),
    ("Iberia Logistics", "Spain", "Valencia"), ("Milano Forniture", "Italy", "Milan"),
    ("Dragon Gate Manufacturing", "China", "Shenzhen"), ("Yangtze Electronics", "China", "Shanghai"),
    ("Sakura Components", "Japan", "Osaka"), ("Seoul Tech Partners", "South Korea", "Seoul"),
    ("Nordic Outdoor AB", "Sweden", "Stockholm"), ("Alpine Gear AG", "Switzerland", "Zurich"),
    ("Delhi Textiles", "India", "New Delhi"), ("Saigon Apparel", "Vietnam", "Ho Chi Minh City"),
    ("Lisbon Paper Works", "Portugal", "Lisbon"), ("Great Lakes Books", "USA", "Detroit"),
]
SUPPLIER_FOCUS = {
    "Electronics": [0, 1, 10, 11, 12, 13], "Home & Kitchen": [0, 2, 5, 6, 9, 10],
    "Sports & Outdoors": [1, 3, 14, 15, 10], "Clothing": [7, 8, 16, 17, 4], "Books": [18, 19, 4, 2],
}
REVIEW_COMMENTS = {
    5: ["Excellent, exactly as described.", "Love it!", "Great quality for the price.", "Would buy again."],
    4: ["Very good, minor issues.", "Good value.", "Works well so far.", "Happy with it overall."],
    3: ["It is okay.", "Average quality.", "Does the job but nothing special."],
    2: ["Disappointed with the quality.", "Broke after a few weeks.", "Not as pictured."],
    1: ["Terrible, returned it.", "Arrived damaged.", "Do not recommend."],
}

START = dt.date(2022, 1, 1)
REF = "2024-12-31"  # fixed reference date for "recent" questions


def build_rows(rng: random.Random):
    cats = []
    cat_id = {}
    for i, (name, parent) in enumerate(CATEGORIES, 1):
        cat_id[name] = i
        cats.append((i, name, cat_id[parent] if parent else None))
    parent_of = {name: parent for name, parent in CATEGORIES}

    sups = []
    for i, (name, country, city) in enumerate(SUPPLIERS, 1):
        slug = name.lower().replace(" ", "").replace("&", "")[:12]
        email = None if i % 6 == 0 else f"sales@{slug}.example.com"
        sups.append((i, name, country, city, email))

    prods = []
    for cname in [c for c, p in CATEGORIES if p]:
        for pname, price in PRODUCTS[cname]:
            pid = len(prods) + 1
            added = START + dt.timedelta(days=rng.randrange(0, 700))
            stock = rng.choice([0, 3, 5, 8, 12, 20, 35, 50, 80, 120, 200]) + rng.randrange(0, 5)
            disc = 1 if rng.random() < 0.08 else 0
            prods.append((pid, pname, cat_id[cname], price, stock, added.isoformat(), disc))

    ps = []
    for p in prods:
        top = parent_of[CATEGORIES[p[2] - 1][0]]
        focus = SUPPLIER_FOCUS[top]
        k = rng.choice([1, 1, 2, 2, 2, 3])
        for s in sorted(rng.sample(focus, k)):
            cost = round(p[3] * rng.uniform(0.45, 0.7), 2)
            ps.append((p[0], s + 1, cost, rng.randrange(3, 35)))

    custs = []
    used_emails = set()
    for cid in range(1, 321):
        fn, ln = rng.choice(FIRST), rng.choice(LAST)
        city, country = rng.choices(CITIES, CITY_W)[0]
        base = f"{fn.lower()}.{ln.lower()}"
        email = f"{base}@example.com"
        n = 2
        while email in used_emails:
            email = f"{base}{n}@example.com"
            n += 1
        used_emails.add(email)
        signup = START + dt.timedelta(days=rng.randrange(0, 1050))
        tier = rng.choices([None, "Bronze", "Silver", "Gold"], [45, 25, 18, 12])[0]
        custs.append((cid, fn, ln, email, city, country, signup.isoformat(), tier))

    orders = []
    items = []
    reviews = []
    # about 12% of customers never order
    buyers = [c for c in custs if rng.random() > 0.12]
    end = dt.date(2024, 12, 31)
    ordered_products = [p for p in prods if rng.random() > 0.07]
    codes = ["WELCOME10", "SUMMER15", "BLACKFRIDAY20", "SPRING5", "VIP25"]
    order_specs = []
    for _ in range(950):
        c = rng.choice(buyers)
        signup = dt.date.fromisoformat(c[6])
        first = max(signup, dt.date(2023, 1, 1))
        if first >= end:
            continue
        day = first + dt.timedelta(days=rng.randrange(0, (end - first).days + 1))
        ts = dt.datetime(day.year, day.month, day.day, rng.randrange(7, 23), rng.randrange(60), rng.randrange(60))
        order_specs.append((ts, c))
    order_specs.sort(key=lambda x: (x[0], x[1][0]))
    for oid, (ts, c) in enumerate(order_specs, 1):
        age = (dt.datetime(2024, 12, 31, 23, 59, 59) - ts).days
        if age < 3:
            status = rng.choice(["pending", "pending", "shipped"])
        elif age < 10:
            status = rng.choice(["shipped", "shipped", "delivered", "cancelled"])
        else:
            status = rng.choices(["delivered", "cancelled", "returned"], [86, 8, 6])[0]
        shipped = None
        if status in ("shipped", "delivered", "returned"):
            sd = ts + dt.timedelta(days=rng.choice([0, 1, 1, 1, 2, 2, 3, 4, 6, 9]), hours=rng.randrange(1, 12))
            shipped = sd.strftime("%Y-%m-%d")
        ship_city = c[4] if rng.random() > 0.06 else rng.choice(CITIES)[0]
        code = rng.choice(codes) if rng.random() < 0.18 else None
        total = 0.0
        chosen = rng.sample(ordered_products, rng.choice([1, 1, 1, 2, 2, 2, 3, 3, 4, 5]))
        for p in sorted(chosen, key=lambda p: p[0]):
            q = rng.choice([1, 1, 1, 1, 2, 2, 3, 4]) if p[3] < 100 else 1
            disc = rng.choice([5, 10, 15, 20]) if rng.random() < 0.15 else None
            line = round(q * p[3] * (100 - (disc or 0)) / 100, 2)
            total += line
            items.append((len(items) + 1, oid, p[0], q, p[3], disc))
            if status == "delivered" and rng.random() < 0.5:
                rd = dt.date.fromisoformat(shipped) + dt.timedelta(days=rng.randrange(3, 40))
                if rd <= end:
                    rating = rng.choices([5, 4, 3, 2, 1], [40, 30, 14, 9, 7])[0]
                    comment = None if rng.random() < 0.3 else rng.choice(REVIEW_COMMENTS[rating])
                    reviews.append([p[0], c[0], rating, rd.isoformat(), comment])
        orders.append((oid, c[0], ts.strftime("%Y-%m-%d %H:%M:%S"), status, shipped, ship_city, code,
                       round(total, 2)))
    reviews.sort(key=lambda r: (r[3], r[0], r[1]))
    seen = set()
    rev_rows = []
    for r in reviews:
        if (r[0], r[1]) in seen:
            continue
        seen.add((r[0], r[1]))
        rev_rows.append((len(rev_rows) + 1, *r))
    return [
        ("categories", ["category_id", "name", "parent_category_id"], cats),
        ("suppliers", ["supplier_id", "name", "country", "city", "contact_email"], sups),
        ("products", ["product_id", "name", "category_id", "unit_price", "stock_quantity", "added_date",
                      "discontinued"], prods),
        ("product_suppliers", ["product_id", "supplier_id", "supply_cost", "lead_time_days"], ps),
        ("customers", ["customer_id", "first_name", "last_name", "email", "city", "country", "signup_date",
                       "loyalty_tier"], custs),
        ("orders", ["order_id", "customer_id", "order_date", "status", "shipped_date", "shipping_city",
                    "discount_code", "total_amount"], orders),
        ("order_items", ["order_item_id", "order_id", "product_id", "quantity", "unit_price", "discount_pct"],
         items),
        ("reviews", ["review_id", "product_id", "customer_id", "rating", "review_date", "comment"], rev_rows),
    ]


# ---------------------------------------------------------------------------
# Slots
# ---------------------------------------------------------------------------

CITY = "SELECT city FROM customers GROUP BY city HAVING COUNT(*) >= 5"
COUNTRY = "SELECT country FROM customers"
UNIQUE_BUYER = ("SELECT first_name, last_name FROM customers WHERE customer_id IN (SELECT customer_id FROM orders) "
                "GROUP BY first_name, last_name HAVING COUNT(*) = 1")
BUYER_EMAIL = "SELECT email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders)"
PROD = "SELECT name FROM products"
SOLD_PROD = "SELECT name FROM products WHERE product_id IN (SELECT product_id FROM order_items)"
REVIEWED_PROD = "SELECT name FROM products WHERE product_id IN (SELECT product_id FROM reviews)"
LEAF = "SELECT name FROM categories WHERE parent_category_id IS NOT NULL"
TOP = "SELECT name FROM categories WHERE parent_category_id IS NULL"
SUP_COUNTRY = "SELECT country FROM suppliers"
STATUS = ["pending", "shipped", "delivered", "cancelled", "returned"]
TIER = ["Bronze", "Silver", "Gold"]
CODE = "SELECT discount_code FROM orders WHERE discount_code IS NOT NULL"
YEAR = ["2023", "2024"]
SIGNUP_YEAR = ["2022", "2023", "2024"]


def order_month(rng, db):
    y = rng.choice(["2023", "2024"])
    m = rng.randrange(1, 13)
    return {"ym": month_v(f"{y}-{m:02d}", rng)}


def order_day(rng, db):
    rows = sorted(r[0] for r in db.execute("SELECT DISTINCT date(order_date) FROM orders").fetchall())
    return {"d": date_v(rng.choice(rows), rng)}


def day_range(rng, db):
    start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(0, 700))
    end = start + dt.timedelta(days=rng.choice([6, 9, 13, 14, 20, 30]))
    style = rng.randrange(4)
    return {"d1": date_v(start.isoformat(), rng, style), "d2": date_v(end.isoformat(), rng, style)}


def ref_window(rng, db):
    ref = dt.date(2024, rng.randrange(2, 13), 1)
    n = rng.choice([30, 60, 90])
    return {"d": date_v(ref.isoformat(), rng), "mod": V(f"-{n} days", str(n))}


def price(rng, db):
    p = rng.choice([50, 75, 100, 150, 200, 250, 300, 400, 500])
    return {"p": V(float(p), str(p)), "pi": p}


def two_cats(rng, db):
    a, b = rng.sample([c[0] for c in CATEGORIES if c[1]], 2)
    return {"c1": a, "c2": b}


def two_cities(rng, db):
    rows = sorted(r[0] for r in db.execute(CITY).fetchall())
    a, b = rng.sample(rows, 2)
    return {"c1": a, "c2": b}


def letter(rng, db):
    ch = rng.choice("BCDGHJKLMPRSTW")
    return {"pat": V(f"{ch}%", ch)}


def keyword(rng, db):
    w = rng.choice(["Wireless", "Bluetooth", "Leather", "Steel", "Wool", "Running", "Speaker", "Bike",
                    "Pro", "Set", "Coffee", "Table", "Shoes", "Phone"])
    return {"pat": V(f"%{w}%", w)}


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------

J_PC = "products AS T1 JOIN categories AS T2 ON T1.category_id = T2.category_id"
J_OC = "orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id"

TEMPLATES = [
    T("cust_count_city", "SELECT COUNT(*) FROM customers WHERE city = {city}", [
        "How many customers are based in {city}?", "Number of clients located in {city}?",
        "how many of our customers live in {city}", "Count the customers whose city is {city}."],
        {"city": CITY}),
    T("prod_in_cat", f"SELECT T1.name, T1.unit_price FROM {J_PC} WHERE T2.name = {{cat}}", [
        "List the products in the {cat} category with their prices.",
        "What do we sell under {cat}, and at what price?",
        "Show names and unit prices of all {cat} products.",
        "which items are in {cat}? include the price"], {"cat": LEAF}),
    T("prod_price_gt", "SELECT name, unit_price FROM products WHERE unit_price > {p} ORDER BY unit_price DESC", [
        "Which products cost more than ${pi}? Sort from most to least expensive.",
        "Show products priced above {pi} dollars, most expensive first.",
        "List every product over ${pi} with its price, highest price first."], {"p": price}),
    T("cust_signup_year", "SELECT first_name, last_name FROM customers WHERE strftime('%Y', signup_date) = {y}", [
        "Which customers signed up in {y}?", "List the names of clients who registered during {y}.",
        "Who created an account in {y}?", "first and last names of customers that joined in {y}"],
        {"y": SIGNUP_YEAR}),
    T("orders_of_customer",
      f"SELECT T1.order_id, T1.order_date, T1.total_amount FROM {J_OC} WHERE T2.first_name = {{fn}} "
      "AND T2.last_name = {ln}", [
          "Show all orders placed by {fn} {ln} with their dates and totals.",
          "What has {fn} {ln} ordered? Give order id, date and amount.",
          "list {fn} {ln}'s orders (id, date, total)"], {("fn", "ln"): UNIQUE_BUYER}),
    T("orders_per_status", "SELECT status, COUNT(*) FROM orders GROUP BY status", [
        "How many orders are there in each status?", "Break down the number of orders by status.",
        "Count orders per order status."]),
    T("revenue_month", "SELECT SUM(total_amount) FROM orders WHERE strftime('%Y-%m', order_date) = {ym}", [
        "What is the total value of all orders placed in {ym}?",
        "Sum of order totals for {ym}, all statuses included?",
        "How much did customers order in {ym} in total (including cancelled orders)?"], {"x": order_month}),
    T("top_spenders",
      f"SELECT T2.first_name, T2.last_name, SUM(T1.total_amount) FROM {J_OC} WHERE T1.status != 'cancelled' "
      "GROUP BY T1.customer_id ORDER BY SUM(T1.total_amount) DESC LIMIT {n}", [
          "Who are the top {n} customers by total order value, not counting cancelled orders?",
          "Give me the {n} biggest spenders (ignore cancelled orders) and how much they spent in total.",
          "Top {n} clients ranked by the sum of their non-cancelled order amounts."], {"n": [3, 5, 10]}, tie_col=2),
    T("avg_rating_product",
      "SELECT AVG(T1.rating) FROM reviews AS T1 JOIN products AS T2 ON T1.product_id = T2.product_id "
      "WHERE T2.name = {prod}", [
          "What is the average rating of the {prod}?", "Average star rating for {prod}?",
          "how well is the {prod} rated on average"], {"prod": REVIEWED_PROD}),
    T("orders_with_code", "SELECT COUNT(*) FROM orders WHERE discount_code = {code}", [
        "How many orders used the discount code {code}?", "Number of orders where the code {code} was applied.",
        "how many times was {code} redeemed?"], {"code": CODE}),
    T("pending_unshipped_city",
      "SELECT order_id, order_date FROM orders WHERE shipped_date IS NULL AND status = 'pending' "
      "AND shipping_city = {city}", [
          "Which pending orders going to {city} have not shipped yet?",
          "List unshipped pending orders for delivery in {city}, with the order date."],
      {"city": "SELECT shipping_city FROM orders WHERE status = 'pending'"}),
    T("cats_with_many_products",
      f"SELECT T2.name, COUNT(*) FROM {J_PC} GROUP BY T2.category_id HAVING COUNT(*) > {{n}}", [
          "Which categories have more than {n} products? Show the counts.",
          "List categories containing over {n} products along with how many.",
          "categories with more than {n} items and their product count"], {"n": [4, 5, 6]}),
    T("suppliers_of_product",
      "SELECT T3.name FROM products AS T1 JOIN product_suppliers AS T2 ON T1.product_id = T2.product_id "
      "JOIN suppliers AS T3 ON T2.supplier_id = T3.supplier_id WHERE T1.name = {prod}", [
          "Who supplies the {prod}?", "Which suppliers provide {prod}?",
          "Names of the vendors we buy {prod} from."], {"prod": PROD}),
    T("suppliers_in_country", "SELECT name, city FROM suppliers WHERE country = {country}", [
        "Which suppliers are located in {country}, and in which city?",
        "List suppliers based in {country} with their cities.", "show me our {country} suppliers"],
      {"country": SUP_COUNTRY}),
    T("prod_name_like", "SELECT name, unit_price FROM products WHERE name LIKE {pat}", [
        "Which products have '{pat}' in their name? Include prices.",
        "Find products whose name contains {pat}, with the price.",
        "products with {pat} in the name and what they cost"], {"x": keyword}),
    T("avg_ship_days_year",
      "SELECT AVG(julianday(shipped_date) - julianday(date(order_date))) FROM orders "
      "WHERE shipped_date IS NOT NULL AND strftime('%Y', order_date) = {y}", [
          "On average, how many days did it take to ship orders placed in {y}?",
          "What was the average number of days between order date and shipping date for {y} orders?",
          "average shipping delay in days for orders from {y} (shipped ones only)"], {"y": YEAR}),
    T("orders_between_days",
      "SELECT COUNT(*) FROM orders WHERE date(order_date) BETWEEN {d1} AND {d2}", [
          "How many orders were placed between {d1} and {d2}, inclusive?",
          "Number of orders from {d1} through {d2}.",
          "count the orders made from {d1} to {d2} (both days included)"], {"x": day_range}),
    T("qty_per_product_in_cat",
      "SELECT T1.name, SUM(T2.quantity) FROM products AS T1 JOIN order_items AS T2 ON T1.product_id = "
      "T2.product_id JOIN categories AS T3 ON T1.category_id = T3.category_id WHERE T3.name = {cat} "
      "GROUP BY T1.product_id", [
          "How many units of each {cat} product have been ordered?",
          "Total quantity ordered per product in the {cat} category.",
          "for every product in {cat}, how many units were sold in total?"], {"cat": LEAF}),
    T("cust_many_orders",
      "SELECT T1.first_name, T1.last_name, COUNT(*) FROM customers AS T1 JOIN orders AS T2 ON T1.customer_id = "
      "T2.customer_id GROUP BY T1.customer_id HAVING COUNT(*) >= {n}", [
          "Which customers have placed at least {n} orders? Show how many.",
          "List clients with {n} or more orders and their order counts.",
          "customers who ordered {n}+ times"], {"n": [5, 6, 7, 8]}),
    T("low_stock", "SELECT name, stock_quantity FROM products WHERE stock_quantity < {n} AND discontinued = 0", [
        "Which products that are still sold have fewer than {n} units in stock?",
        "Active products with stock below {n}: name and quantity.",
        "what's running low? products not discontinued with under {n} in stock"], {"n": [5, 10, 15, 25]}),
    T("avg_order_by_country",
      f"SELECT T2.country, AVG(T1.total_amount) FROM {J_OC} GROUP BY T2.country", [
          "What is the average order value for customers in each country?",
          "Average order total by customer country.", "avg order amount per country of the buyer"]),
    T("monthly_orders_year",
      "SELECT strftime('%m', order_date), COUNT(*) FROM orders WHERE strftime('%Y', order_date) = {y} "
      "GROUP BY strftime('%m', order_date)", [
          "How many orders were placed in each month of {y}?", "Monthly order counts for {y}.",
          "Give the number of orders per month during {y}."], {"y": YEAR}),
    T("reviewers_of_product",
      "SELECT T3.first_name, T3.last_name, T1.rating FROM reviews AS T1 JOIN products AS T2 ON T1.product_id = "
      "T2.product_id JOIN customers AS T3 ON T1.customer_id = T3.customer_id WHERE T2.name = {prod}", [
          "Who reviewed the {prod} and what rating did each give?",
          "List the reviewers of {prod} with their star ratings.",
          "customer names and ratings for reviews of {prod}"], {"prod": REVIEWED_PROD}),
    T("reviews_no_comment_rating",
      "SELECT COUNT(*) FROM reviews WHERE comment IS NULL AND rating = {r}", [
          "How many {r}-star reviews have no written comment?",
          "Count reviews rated {r} that were left without a comment.",
          "number of {r} star ratings with an empty comment"], {"r": [1, 2, 3, 4, 5]}),
    T("orders_many_lines",
      "SELECT order_id, COUNT(*) FROM order_items GROUP BY order_id HAVING COUNT(*) >= {n}", [
          "Which orders contain at least {n} different products? Show the number of lines.",
          "List orders with {n} or more line items and their line count.",
          "orders that have {n}+ distinct products in them"], {"n": [3, 4, 5]}),
    T("union_cat_or_price",
      f"SELECT T1.name FROM {J_PC} WHERE T2.name = {{cat}} UNION SELECT name FROM products WHERE unit_price > {{p}}",
      ["Which products are either in {cat} or priced over ${pi}?",
       "List product names that belong to the {cat} category or cost more than {pi} dollars.",
       "products in {cat}, plus any product above ${pi}"], {"cat": LEAF, "p": price}),
    T("intersect_years_city",
      "SELECT T1.email FROM customers AS T1 JOIN orders AS T2 ON T1.customer_id = T2.customer_id WHERE T1.city = "
      "{city} AND strftime('%Y', T2.order_date) = '2023' INTERSECT SELECT T1.email FROM customers AS T1 JOIN "
      "orders AS T2 ON T1.customer_id = T2.customer_id WHERE T1.city = {city} AND strftime('%Y', T2.order_date) "
      "= '2024'", [
          "Emails of {city} customers who ordered both in 2023 and in 2024?",
          "Which customers from {city} placed orders in 2023 as well as 2024? Give their email addresses.",
          "email of clients in {city} that bought something in both 2023 and 2024"], {"city": CITY},
      split="test"),
    T("except_never_ordered_city",
      "SELECT email FROM customers WHERE city = {city} EXCEPT SELECT T1.email FROM customers AS T1 JOIN orders AS T2 "
      "ON T1.customer_id = T2.customer_id", [
          "Which customers in {city} have never placed an order? Give their emails.",
          "Emails of {city} clients without any orders.",
          "list the {city} customers who signed up but never bought anything (email)"], {"city": CITY},
      split="test"),
    T("exists_supplier_cat",
      "SELECT T1.name FROM suppliers AS T1 WHERE EXISTS (SELECT 1 FROM product_suppliers AS T2 JOIN products AS T3 "
      "ON T2.product_id = T3.product_id JOIN categories AS T4 ON T3.category_id = T4.category_id WHERE "
      "T2.supplier_id = T1.supplier_id AND T4.name = {cat})", [
          "Which suppliers supply at least one product in the {cat} category?",
          "Names of suppliers that provide any {cat} item.",
          "who are the vendors for {cat} products?"], {"cat": LEAF}),
    T("cat_above_avg_price",
      f"SELECT T1.name, T1.unit_price FROM {J_PC} WHERE T2.name = {{cat}} AND T1.unit_price > "
      "(SELECT AVG(unit_price) FROM products)", [
          "Which {cat} products cost more than the average price of all products?",
          "List {cat} items priced above the overall average product price.",
          "{cat} products that are more expensive than our average product"], {"cat": LEAF}, split="test"),
    T("price_bands",
      "SELECT CASE WHEN unit_price < 50 THEN 'budget' WHEN unit_price < 200 THEN 'mid-range' ELSE 'premium' END, "
      "COUNT(*) FROM products GROUP BY CASE WHEN unit_price < 50 THEN 'budget' WHEN unit_price < 200 THEN "
      "'mid-range' ELSE 'premium' END", [
          "How many products are budget (under $50), mid-range ($50 to under $200) and premium ($200 or more)?",
          "Count products per price band: budget below 50, mid-range below 200, premium otherwise."],
      split="test"),
    T("orders_day_coalesce_code",
      "SELECT order_id, COALESCE(discount_code, 'none') FROM orders WHERE date(order_date) = {d}", [
          "List the orders placed on {d} with the discount code used, or 'none' if there was no code.",
          "For each order from {d}, show its id and discount code (write none when missing)."],
      {"x": order_day}),
    T("slow_shipping",
      "SELECT order_id, order_date, shipped_date FROM orders WHERE julianday(shipped_date) - "
      "julianday(date(order_date)) > {n}", [
          "Which orders took more than {n} days to ship?",
          "List orders whose shipping date is over {n} days after the order date.",
          "orders that shipped more than {n} days after being placed"], {"n": [4, 5, 7]}),
    T("recent_signups",
      "SELECT first_name, last_name, signup_date FROM customers WHERE signup_date >= date({d}, {mod}) "
      "AND signup_date < {d}", [
          "Who signed up in the {mod} days before {d}?",
          "List customers who registered during the {mod} days leading up to {d}.",
          "new clients in the last {mod} days before {d}, with signup date"], {"x": ref_window}),
    T("distinct_cities_country", "SELECT DISTINCT city FROM customers WHERE country = {country}", [
        "In which cities do we have customers in {country}?", "Distinct customer cities in {country}.",
        "what cities are our {country} customers from"], {"country": COUNTRY}),
    T("distinct_buyers_product",
      "SELECT COUNT(DISTINCT T1.customer_id) FROM orders AS T1 JOIN order_items AS T2 ON T1.order_id = "
      "T2.order_id JOIN products AS T3 ON T2.product_id = T3.product_id WHERE T3.name = {prod}", [
          "How many different customers have ordered the {prod}?",
          "Number of distinct clients who bought {prod}.", "how many unique buyers does {prod} have"],
      {"prod": SOLD_PROD}),
    T("gross_sales_per_cat_year",
      "SELECT T4.name, SUM(T2.quantity * T2.unit_price) FROM orders AS T1 JOIN order_items AS T2 ON "
      "T1.order_id = T2.order_id JOIN products AS T3 ON T2.product_id = T3.product_id JOIN categories AS T4 ON "
      "T3.category_id = T4.category_id WHERE strftime('%Y', T1.order_date) = {y} GROUP BY T4.category_id", [
          "What were gross sales (quantity times unit price, before discounts) per category in {y}?",
          "For {y} orders, total quantity x price by product category.",
          "category-level gross revenue before discounts for orders placed in {y}"], {"y": YEAR}, split="test"),
    T("min_max_price_cat",
      f"SELECT MAX(T1.unit_price), MIN(T1.unit_price) FROM {J_PC} WHERE T2.name = {{cat}}", [
          "What are the highest and lowest prices in {cat}?",
          "Most and least expensive price among {cat} products?",
          "price range (max and min) of the {cat} category"], {"cat": LEAF}),
    T("subcategories",
      "SELECT T1.name FROM categories AS T1 JOIN categories AS T2 ON T1.parent_category_id = T2.category_id "
      "WHERE T2.name = {top}", [
          "What are the subcategories of {top}?", "Which categories sit under {top}?",
          "list child categories of {top}"], {"top": TOP}),
    T("top_level_cats", "SELECT name FROM categories WHERE parent_category_id IS NULL", [
        "What are the top-level categories?", "List the categories that have no parent category.",
        "Which main categories does the shop have?"], split="dev"),
    T("cheapest_supplier_for",
      "SELECT T3.name, T2.supply_cost FROM products AS T1 JOIN product_suppliers AS T2 ON T1.product_id = "
      "T2.product_id JOIN suppliers AS T3 ON T2.supplier_id = T3.supplier_id WHERE T1.name = {prod} "
      "ORDER BY T2.supply_cost LIMIT 1", [
          "Which supplier offers the {prod} at the lowest cost, and what is that cost?",
          "Cheapest supplier for {prod} and its supply cost?",
          "who sells us {prod} for the least money"],
      {"prod": "SELECT T1.name FROM products AS T1 JOIN product_suppliers AS T2 ON T1.product_id = T2.product_id "
               "GROUP BY T1.product_id HAVING COUNT(*) > 1"}, split="test", tie_col=1),
    T("lead_time_by_country",
      "SELECT T2.country, AVG(T1.lead_time_days) FROM product_suppliers AS T1 JOIN suppliers AS T2 ON "
      "T1.supplier_id = T2.supplier_id GROUP BY T2.country", [
          "What is the average lead time in days for suppliers in each country?",
          "Average supplier lead time grouped by supplier country.",
          "avg lead time per supplier country"]),
    T("status_year_count",
      "SELECT COUNT(*) FROM orders WHERE status = {st} AND strftime('%Y', order_date) = {y}", [
          "How many orders placed in {y} are {st}?", "Number of {st} orders from {y}.",
          "count of orders with status {st} that were placed in {y}"], {"st": STATUS, "y": YEAR}),
    T("largest_orders",
      "SELECT order_id, total_amount FROM orders ORDER BY total_amount DESC LIMIT {n}", [
          "What are the {n} largest orders by total amount?", "Show the top {n} orders by value.",
          "the {n} most expensive orders and their totals"], {"n": [3, 5, 10, 20]}, tie_col=1),
    T("last_name_starts",
      "SELECT first_name, last_name, city FROM customers WHERE last_name LIKE {pat}", [
          "Which customers have a last name starting with {pat}? Include their city.",
          "List clients whose surname begins with the letter {pat}, with city.",
          "customers with last names that start with {pat}"], {"x": letter}),
    T("rated_products_having",
      "SELECT T2.name, AVG(T1.rating) FROM reviews AS T1 JOIN products AS T2 ON T1.product_id = T2.product_id "
      "GROUP BY T1.product_id HAVING COUNT(*) >= {k} AND AVG(T1.rating) >= {r}", [
          "Which products with at least {k} reviews have an average rating of {r} or higher?",
          "List products averaging {r}+ stars across {k} or more reviews.",
          "products rated {r} or better on average (minimum {k} reviews)"],
      {"r": [4.0, 4.2, 4.5], "k": [3, 4, 5]}),
    T("items_of_order",
      "SELECT T2.name, T1.quantity FROM order_items AS T1 JOIN products AS T2 ON T1.product_id = T2.product_id "
      "WHERE T1.order_id = {oid}", [
          "What products are in order {oid}, and how many of each?", "Items and quantities for order #{oid}.",
          "show the contents of order number {oid}"],
      {"oid": "SELECT order_id FROM order_items GROUP BY order_id HAVING COUNT(*) >= 2"}),
    T("spent_by_email",
      f"SELECT SUM(T1.total_amount) FROM {J_OC} WHERE T2.email = {{email}} AND T1.status != 'cancelled'", [
          "How much has the customer with email {email} spent, excluding cancelled orders?",
          "Total of non-cancelled orders for {email}?",
          "what's the total spend of {email}, not counting cancelled orders"], {"email": BUYER_EMAIL}),
    T("products_per_supplier",
      "SELECT T1.name, COUNT(*) FROM suppliers AS T1 JOIN product_suppliers AS T2 ON T1.supplier_id = "
      "T2.supplier_id GROUP BY T1.supplier_id ORDER BY COUNT(*) DESC", [
          "How many products does each supplier provide? Order from most to fewest.",
          "Number of products per supplier, sorted descending."], split="dev"),
    T("tier_city", "SELECT first_name, last_name FROM customers WHERE loyalty_tier = {tier} AND city = {city}", [
        "Which {tier} members live in {city}?", "List {tier}-tier customers from {city}.",
        "names of customers in {city} with {tier} loyalty status"], {"tier": TIER, "city": CITY}),
    T("no_tier_big_spenders",
      "SELECT first_name, last_name FROM customers WHERE loyalty_tier IS NULL AND customer_id IN "
      "(SELECT customer_id FROM orders GROUP BY customer_id HAVING SUM(total_amount) > {x})", [
          "Which customers without a loyalty tier have ordered more than ${x} in total?",
          "List clients not enrolled in the loyalty program whose orders add up to over {x} dollars.",
          "customers with no tier but more than ${x} of orders"], {"x": [1000, 1500, 2000, 3000]},
      split="test"),
    T("never_reviewed_in_cat",
      f"SELECT T1.name FROM {J_PC} WHERE T2.name = {{cat}} AND T1.product_id NOT IN "
      "(SELECT product_id FROM reviews)", [
          "Which {cat} products have never been reviewed?", "List {cat} items without any reviews.",
          "products in {cat} that nobody has reviewed yet"], {"cat": LEAF}, split="test"),
    T("never_ordered_products",
      "SELECT name FROM products WHERE product_id NOT IN (SELECT product_id FROM order_items)", [
          "Which products have never been ordered?", "List products that nobody has bought.",
          "What items have zero orders?"], split="test"),
    T("discounted_orders_month",
      "SELECT COUNT(DISTINCT T1.order_id) FROM order_items AS T1 JOIN orders AS T2 ON T1.order_id = "
      "T2.order_id WHERE T1.discount_pct IS NOT NULL AND strftime('%Y-%m', T2.order_date) = {ym}", [
          "How many orders in {ym} had at least one discounted line?",
          "Number of orders from {ym} where some item got a percentage discount.",
          "count {ym} orders with any line-level discount"], {"x": order_month}),
    T("latest_order_email",
      "SELECT order_id, order_date FROM orders WHERE customer_id = (SELECT customer_id FROM customers WHERE "
      "email = {email}) ORDER BY order_date DESC LIMIT 1", [
          "What is the most recent order of the customer {email}?",
          "When did {email} last order, and which order was it?",
          "latest order (id and date) for {email}"], {"email": BUYER_EMAIL}, split="test", tie_col=1),
    T("orders_per_year", "SELECT strftime('%Y', order_date), COUNT(*) FROM orders GROUP BY strftime('%Y', order_date)",
      ["How many orders were placed each year?", "Yearly number of orders.", "orders count by year"],
      split="dev"),
    T("added_after",
      "SELECT name, added_date FROM products WHERE added_date > {d} ORDER BY added_date", [
          "Which products were added to the catalogue after {d}? Oldest first.",
          "List products added after {d}, sorted by the date they were added.",
          "what got added to the shop after {d}"],
      {"x": lambda rng, db: {"d": date_v(f"2023-{rng.randrange(4, 13):02d}-01", rng)}}),
    T("suppliers_long_lead",
      "SELECT DISTINCT T1.name FROM suppliers AS T1 JOIN product_suppliers AS T2 ON T1.supplier_id = "
      "T2.supplier_id WHERE T2.lead_time_days > {n}", [
          "Which suppliers have a lead time over {n} days for at least one product?",
          "Suppliers with any product taking more than {n} days to deliver?",
          "vendors with lead times longer than {n} days"], {"n": [20, 25, 30]}),
    T("best_margin",
      "SELECT T1.name, T1.unit_price - MIN(T2.supply_cost) FROM products AS T1 JOIN product_suppliers AS T2 ON "
      "T1.product_id = T2.product_id GROUP BY T1.product_id ORDER BY T1.unit_price - MIN(T2.supply_cost) DESC "
      "LIMIT {n}", [
          "Which {n} products have the biggest margin between list price and the cheapest supply cost?",
          "Top {n} products by unit margin (price minus lowest supplier cost).",
          "the {n} products where we make the most per unit versus the cheapest supplier"],
      {"n": [3, 5, 10]}, split="test", tie_col=1),
    T("cancel_rate_year",
      "SELECT 100.0 * SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) / COUNT(*) FROM orders "
      "WHERE strftime('%Y', order_date) = {y}", [
          "What percentage of orders placed in {y} were cancelled?",
          "Cancellation rate (in percent) for {y} orders?", "share of {y} orders that got cancelled, as a %"],
      {"y": YEAR}, split="test"),
    T("delivered_to_city",
      "SELECT COUNT(*) FROM orders WHERE shipping_city = {city} AND status = 'delivered'", [
          "How many orders have been delivered to {city}?", "Number of delivered orders shipped to {city}.",
          "delivered order count for {city}"], {"city": CITY}),
    T("cust_cities_in_two",
      "SELECT first_name, last_name, city FROM customers WHERE city = {c1} OR city = {c2}", [
          "List customers who live in {c1} or {c2}.", "Which clients are from either {c1} or {c2}?",
          "customers based in {c1} or in {c2}, with their city"], {"x": two_cities}),
    T("cat_product_counts_two",
      f"SELECT T2.name, COUNT(*) FROM {J_PC} WHERE T2.name IN ({{c1}}, {{c2}}) GROUP BY T2.name", [
          "How many products are in {c1} and how many in {c2}?",
          "Compare the number of products in {c1} versus {c2}."], {"x": two_cats}, split="dev"),
    T("avg_rating_by_cat",
      "SELECT T3.name, AVG(T1.rating) FROM reviews AS T1 JOIN products AS T2 ON T1.product_id = T2.product_id "
      "JOIN categories AS T3 ON T2.category_id = T3.category_id GROUP BY T3.category_id "
      "ORDER BY AVG(T1.rating) DESC", [
          "What is the average review rating in each category, best first?",
          "Rank categories by their average product rating.",
          "avg stars per category, sorted from highest"], split="test"),
    T("returned_orders_customers",
      f"SELECT DISTINCT T2.first_name, T2.last_name FROM {J_OC} WHERE T1.status = 'returned' "
      "AND T2.country = {country}", [
          "Which customers from {country} have returned an order?",
          "Names of {country} clients with at least one returned order.",
          "who in {country} sent an order back?"],
      {"country": "SELECT T2.country FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id "
                  "WHERE T1.status = 'returned'"}, split="dev"),
    T("products_multi_supplier",
      "SELECT T1.name, COUNT(*) FROM products AS T1 JOIN product_suppliers AS T2 ON T1.product_id = "
      "T2.product_id GROUP BY T1.product_id HAVING COUNT(*) >= {n}", [
          "Which products can be sourced from at least {n} suppliers?",
          "Products with {n} or more suppliers, and how many each has.",
          "items we can buy from {n}+ different vendors"], {"n": [2, 3]}),
    T("customer_first_order_gap",
      "SELECT T2.first_name, T2.last_name, MIN(julianday(date(T1.order_date))) - julianday(T2.signup_date) "
      f"FROM {J_OC} WHERE T2.city = {{city}} GROUP BY T2.customer_id", [
          "For customers in {city}, how many days passed between signing up and their first order?",
          "Days from signup to first purchase for each {city} customer who ordered.",
          "how long did {city} customers take to place their first order after registering (in days)"],
      {"city": CITY}, split="test"),
    T("no_email_suppliers", "SELECT name, country FROM suppliers WHERE contact_email IS NULL", [
        "Which suppliers have no contact email on file?", "List suppliers missing an email address.",
        "suppliers where we don't know the contact email"], split="test"),
    T("gold_avg_vs_all",
      "SELECT AVG(T1.total_amount) FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id "
      "WHERE T2.loyalty_tier = {tier}", [
          "What is the average order value of {tier} tier customers?",
          "Average order total among {tier} members?", "avg order size for {tier} loyalty customers"],
      {"tier": TIER}),
    T("most_reviewed_products",
      "SELECT T2.name, COUNT(*) FROM reviews AS T1 JOIN products AS T2 ON T1.product_id = T2.product_id "
      "GROUP BY T1.product_id ORDER BY COUNT(*) DESC LIMIT {n}", [
          "Which {n} products have the most reviews? Show the review counts.",
          "Top {n} most-reviewed products.", "the {n} products people reviewed most often"],
      {"n": [3, 5, 10]}, tie_col=1),
    T("expensive_never_discounted",
      "SELECT name FROM products WHERE unit_price > {p} AND product_id NOT IN (SELECT product_id FROM order_items "
      "WHERE discount_pct IS NOT NULL)", [
          "Which products over ${pi} have never been sold with a discount?",
          "List products priced above {pi} dollars that never had a discounted order line.",
          "products above ${pi} that have never had a discount on any order line"], {"p": price}, split="dev"),
]


def main() -> None:
    rng = random.Random(SEED)
    tables = build_rows(rng)
    build_domain("retail", SCHEMA, tables, TEMPLATES, seed=SEED + 1)


if __name__ == "__main__":
    main()
