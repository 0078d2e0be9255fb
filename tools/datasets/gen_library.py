"""Generate datasets/library/: a public library system (schema, data, question/SQL splits).

Deterministic: `python3 tools/datasets/gen_library.py` rewrites the folder
byte-identically. Python 3.11 standard library only.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common_a import T, V, build_domain, date_v, month_v  # noqa: E402

SEED = 1851

SCHEMA = """
-- Public library network. Fines are INTEGER amounts in US cents (divide by 100 for dollars).
-- Dates are TEXT 'YYYY-MM-DD'. A loan with return_date NULL is still out.
CREATE TABLE branches (
    branch_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    city TEXT NOT NULL,
    opened_date TEXT NOT NULL
);

CREATE TABLE authors (
    author_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    birth_year INTEGER, -- NULL when unknown
    nationality TEXT NOT NULL
);

CREATE TABLE books (
    book_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    isbn TEXT NOT NULL UNIQUE,
    publication_year INTEGER NOT NULL,
    genre TEXT NOT NULL,
    publisher TEXT NOT NULL,
    page_count INTEGER NOT NULL
);

CREATE TABLE book_authors (
    book_id INTEGER NOT NULL REFERENCES books (book_id),
    author_id INTEGER NOT NULL REFERENCES authors (author_id),
    PRIMARY KEY (book_id, author_id)
);

CREATE TABLE copies (
    copy_id INTEGER PRIMARY KEY,
    book_id INTEGER NOT NULL REFERENCES books (book_id),
    branch_id INTEGER NOT NULL REFERENCES branches (branch_id),
    acquired_date TEXT NOT NULL,
    condition TEXT NOT NULL -- 'new', 'good', 'worn', 'damaged'
);

CREATE TABLE members (
    member_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    city TEXT NOT NULL,
    join_date TEXT NOT NULL,
    membership_type TEXT NOT NULL, -- 'standard', 'student', 'senior', 'premium'
    home_branch_id INTEGER NOT NULL REFERENCES branches (branch_id)
);

CREATE TABLE loans (
    loan_id INTEGER PRIMARY KEY,
    copy_id INTEGER NOT NULL REFERENCES copies (copy_id),
    member_id INTEGER NOT NULL REFERENCES members (member_id),
    loan_date TEXT NOT NULL,
    due_date TEXT NOT NULL, -- loan_date + 21 days
    return_date TEXT -- NULL while the copy has not come back
);

CREATE TABLE fines (
    fine_id INTEGER PRIMARY KEY,
    loan_id INTEGER NOT NULL REFERENCES loans (loan_id),
    amount_cents INTEGER NOT NULL, -- US cents
    issued_date TEXT NOT NULL,
    paid_date TEXT -- NULL while unpaid
);
"""

BRANCHES = [
    ("Central Library", "Portland", "1998-05-12"), ("Riverside Branch", "Portland", "2004-09-01"),
    ("Northgate Branch", "Beaverton", "2009-03-15"), ("Harbor View Branch", "Astoria", "2012-06-20"),
    ("Oakwood Branch", "Salem", "2016-10-03"), ("University Branch", "Eugene", "2019-01-14"),
]
AUTHORS = [
    # first, last, birth year (None = unknown), nationality
    ("Jane", "Austen", 1775, "British"), ("Charles", "Dickens", 1812, "British"), ("George", "Orwell", 1903, "British"),
    ("Virginia", "Woolf", 1882, "British"), ("Agatha", "Christie", 1890, "British"), ("Mark", "Twain", 1835, "American"),
    ("Ernest", "Hemingway", 1899, "American"), ("Toni", "Morrison", 1931, "American"),
    ("Harper", "Lee", 1926, "American"), ("F. Scott", "Fitzgerald", 1896, "American"),
    ("Leo", "Tolstoy", 1828, "Russian"), ("Fyodor", "Dostoevsky", 1821, "Russian"),
    ("Gabriel", "Garcia Marquez", 1927, "Colombian"), ("Isabel", "Allende", 1942, "Chilean"),
    ("Haruki", "Murakami", 1949, "Japanese"), ("Kazuo", "Ishiguro", 1954, "British"),
    ("Chinua", "Achebe", 1930, "Nigerian"), ("Chimamanda", "Adichie", 1977, "Nigerian"),
    ("Margaret", "Atwood", 1939, "Canadian"), ("Alice", "Munro", 1931, "Canadian"),
    ("Terry", "Pratchett", 1948, "British"), ("Neil", "Gaiman", 1960, "British"),
    ("Stephen", "King", 1947, "American"), ("Peter", "Straub", 1943, "American"),
    ("Ursula", "Le Guin", 1929, "American"), ("Isaac", "Asimov", 1920, "American"),
    ("Frank", "Herbert", 1920, "American"), ("J.R.R.", "Tolkien", 1892, "British"),
    ("Mary", "Shelley", 1797, "British"), ("Bram", "Stoker", 1847, "Irish"), ("James", "Joyce", 1882, "Irish"),
    ("Yuval Noah", "Harari", 1976, "Israeli"), ("Stephen", "Hawking", 1942, "British"),
    ("Carl", "Sagan", 1934, "American"), ("Michelle", "Obama", 1964, "American"),
    ("Rebecca", "Skloot", None, "American"), ("Daniel", "Kahneman", 1934, "Israeli"),
    ("Amos", "Tversky", 1937, "Israeli"), ("Elena", "Ferrante", None, "Italian"),
    ("Umberto", "Eco", 1932, "Italian"), ("Sally", "Rooney", 1991, "Irish"),
    ("Delia", "Owens", 1949, "American"), ("Tara", "Westover", 1986, "American"),
]
# title, year, genre, publisher, pages, authors (last names)
BOOKS = [
    ("Pride and Prejudice", 1813, "Classic", "Penguin Classics", 432, ["Austen"]),
    ("Emma", 1815, "Classic", "Penguin Classics", 474, ["Austen"]),
    ("Sense and Sensibility", 1811, "Classic", "Vintage", 409, ["Austen"]),
    ("Great Expectations", 1861, "Classic", "Penguin Classics", 544, ["Dickens"]),
    ("A Tale of Two Cities", 1859, "Classic", "Vintage", 489, ["Dickens"]),
    ("Oliver Twist", 1838, "Classic", "Penguin Classics", 608, ["Dickens"]),
    ("Nineteen Eighty-Four", 1949, "Science Fiction", "Penguin Books", 328, ["Orwell"]),
    ("Animal Farm", 1945, "Classic", "Penguin Books", 112, ["Orwell"]),
    ("Mrs Dalloway", 1925, "Classic", "Vintage", 194, ["Woolf"]),
    ("To the Lighthouse", 1927, "Classic", "Vintage", 209, ["Woolf"]),
    ("Murder on the Orient Express", 1934, "Mystery", "HarperCollins", 256, ["Christie"]),
    ("And Then There Were None", 1939, "Mystery", "HarperCollins", 272, ["Christie"]),
    ("The Murder of Roger Ackroyd", 1926, "Mystery", "HarperCollins", 312, ["Christie"]),
    ("Adventures of Huckleberry Finn", 1884, "Classic", "Penguin Classics", 366, ["Twain"]),
    ("The Old Man and the Sea", 1952, "Classic", "Scribner", 127, ["Hemingway"]),
    ("A Farewell to Arms", 1929, "Classic", "Scribner", 355, ["Hemingway"]),
    ("Beloved", 1987, "Literary Fiction", "Vintage", 324, ["Morrison"]),
    ("Song of Solomon", 1977, "Literary Fiction", "Vintage", 337, ["Morrison"]),
    ("To Kill a Mockingbird", 1960, "Classic", "HarperCollins", 336, ["Lee"]),
    ("The Great Gatsby", 1925, "Classic", "Scribner", 180, ["Fitzgerald"]),
    ("War and Peace", 1869, "Classic", "Vintage", 1225, ["Tolstoy"]),
    ("Anna Karenina", 1878, "Classic", "Penguin Classics", 864, ["Tolstoy"]),
    ("Crime and Punishment", 1866, "Classic", "Penguin Classics", 671, ["Dostoevsky"]),
    ("The Brothers Karamazov", 1880, "Classic", "Vintage", 796, ["Dostoevsky"]),
    ("One Hundred Years of Solitude", 1967, "Literary Fiction", "Harper Perennial", 417, ["Garcia Marquez"]),
    ("Love in the Time of Cholera", 1985, "Literary Fiction", "Vintage", 348, ["Garcia Marquez"]),
    ("The House of the Spirits", 1982, "Literary Fiction", "Atria Books", 448, ["Allende"]),
    ("Norwegian Wood", 1987, "Literary Fiction", "Vintage", 296, ["Murakami"]),
    ("Kafka on the Shore", 2002, "Literary Fiction", "Vintage", 505, ["Murakami"]),
    ("1Q84", 2009, "Literary Fiction", "Knopf", 925, ["Murakami"]),
    ("The Remains of the Day", 1989, "Literary Fiction", "Vintage", 258, ["Ishiguro"]),
    ("Never Let Me Go", 2005, "Science Fiction", "Vintage", 288, ["Ishiguro"]),
    ("Klara and the Sun", 2021, "Science Fiction", "Knopf", 303, ["Ishiguro"]),
    ("Things Fall Apart", 1958, "Classic", "Penguin Books", 209, ["Achebe"]),
    ("Americanah", 2013, "Literary Fiction", "Knopf", 588, ["Adichie"]),
    ("Half of a Yellow Sun", 2006, "Literary Fiction", "Knopf", 433, ["Adichie"]),
    ("The Handmaid's Tale", 1985, "Science Fiction", "McClelland and Stewart", 311, ["Atwood"]),
    ("Oryx and Crake", 2003, "Science Fiction", "McClelland and Stewart", 376, ["Atwood"]),
    ("The Blind Assassin", 2000, "Literary Fiction", "McClelland and Stewart", 521, ["Atwood"]),
    ("Dear Life", 2012, "Short Stories", "McClelland and Stewart", 319, ["Munro"]),
    ("Runaway", 2004, "Short Stories", "Knopf", 335, ["Munro"]),
    ("Good Omens", 1990, "Fantasy", "HarperCollins", 412, ["Pratchett", "Gaiman"]),
    ("Guards! Guards!", 1989, "Fantasy", "HarperCollins", 355, ["Pratchett"]),
    ("Mort", 1987, "Fantasy", "HarperCollins", 315, ["Pratchett"]),
    ("American Gods", 2001, "Fantasy", "HarperCollins", 635, ["Gaiman"]),
    ("Coraline", 2002, "Fantasy", "HarperCollins", 162, ["Gaiman"]),
    ("The Shining", 1977, "Horror", "Doubleday", 447, ["King"]),
    ("It", 1986, "Horror", "Viking", 1138, ["King"]),
    ("Misery", 1987, "Horror", "Viking", 370, ["King"]),
    ("The Talisman", 1984, "Fantasy", "Viking", 921, ["King", "Straub"]),
    ("Ghost Story", 1979, "Horror", "Coward McCann", 483, ["Straub"]),
    ("A Wizard of Earthsea", 1968, "Fantasy", "Parnassus Press", 183, ["Le Guin"]),
    ("The Left Hand of Darkness", 1969, "Science Fiction", "Ace Books", 286, ["Le Guin"]),
    ("The Dispossessed", 1974, "Science Fiction", "Harper and Row", 387, ["Le Guin"]),
    ("Foundation", 1951, "Science Fiction", "Gnome Press", 255, ["Asimov"]),
    ("I, Robot", 1950, "Science Fiction", "Gnome Press", 253, ["Asimov"]),
    ("Dune", 1965, "Science Fiction", "Chilton Books", 412, ["Herbert"]),
    ("The Hobbit", 1937, "Fantasy", "HarperCollins", 310, ["Tolkien"]),
    ("The Fellowship of the Ring", 1954, "Fantasy", "HarperCollins", 423, ["Tolkien"]),
    ("Frankenstein", 1818, "Horror", "Penguin Classics", 280, ["Shelley"]),
    ("Dracula", 1897, "Horror", "Penguin Classics", 418, ["Stoker"]),
    ("Dubliners", 1914, "Short Stories", "Penguin Classics", 256, ["Joyce"]),
    ("Ulysses", 1922, "Classic", "Vintage", 730, ["Joyce"]),
    ("Sapiens", 2011, "Non-Fiction", "Harper", 443, ["Harari"]),
    ("Homo Deus", 2015, "Non-Fiction", "Harper", 450, ["Harari"]),
    ("A Brief History of Time", 1988, "Science", "Bantam", 212, ["Hawking"]),
    ("Cosmos", 1980, "Science", "Random House", 396, ["Sagan"]),
    ("Pale Blue Dot", 1994, "Science", "Random House", 429, ["Sagan"]),
    ("Becoming", 2018, "Biography", "Crown", 448, ["Obama"]),
    ("The Immortal Life of Henrietta Lacks", 2010, "Science", "Crown", 381, ["Skloot"]),
    ("Thinking, Fast and Slow", 2011, "Non-Fiction", "Farrar Straus and Giroux", 499, ["Kahneman"]),
    ("Judgment under Uncertainty", 1982, "Science", "Cambridge University Press", 555, ["Kahneman", "Tversky"]),
    ("My Brilliant Friend", 2011, "Literary Fiction", "Europa Editions", 331, ["Ferrante"]),
    ("The Story of a New Name", 2012, "Literary Fiction", "Europa Editions", 471, ["Ferrante"]),
    ("The Name of the Rose", 1980, "Mystery", "Harcourt", 536, ["Eco"]),
    ("Normal People", 2018, "Literary Fiction", "Faber and Faber", 273, ["Rooney"]),
    ("Conversations with Friends", 2017, "Literary Fiction", "Faber and Faber", 321, ["Rooney"]),
    ("Where the Crawdads Sing", 2018, "Mystery", "Putnam", 384, ["Owens"]),
    ("Educated", 2018, "Biography", "Random House", 352, ["Westover"]),
]
FIRST = [
    "Amelia", "Benjamin", "Clara", "Daniel", "Eleanor", "Felix", "Georgia", "Harvey", "Isla", "Jack",
    "Keira", "Logan", "Maya", "Nolan", "Ophelia", "Parker", "Ruby", "Silas", "Theo", "Violet",
    "Wyatt", "Zara", "Adrian", "Bella", "Caleb", "Delilah", "Elijah", "Freya", "Gavin", "Hazel",
    "Isaac", "Jade", "Kai", "Lila", "Miles", "Nora", "Owen", "Piper", "Reid", "Stella",
    "Tessa", "Uma", "Vincent", "Willow", "Xavier", "Yara", "Zane", "Aria", "Beau", "Cora",
]
LAST = [
    "Anderson", "Bailey", "Brooks", "Castillo", "Cooper", "Diaz", "Edwards", "Flores", "Gomez", "Gray",
    "Hughes", "James", "Kelly", "Long", "Murphy", "Myers", "Ortiz", "Perry", "Powell", "Price",
    "Ramos", "Reed", "Rivera", "Ross", "Sanders", "Simmons", "Stewart", "Sullivan", "Torres", "Ward",
    "Watson", "West", "Wood", "Bennett", "Butler", "Coleman", "Fisher", "Graham", "Hayes", "Jenkins",
    "Lopez", "Morales", "Nguyen", "Patterson", "Reyes", "Russell", "Tran", "Vasquez", "Webb", "Young",
]
MEMBER_CITIES = ["Portland", "Portland", "Portland", "Beaverton", "Beaverton", "Astoria", "Salem", "Salem",
                 "Eugene", "Eugene", "Gresham", "Hillsboro"]
REF = dt.date(2024, 12, 31)
LOAN_DAYS = 21
FINE_PER_DAY = 25  # cents


def _d(x: dt.date) -> str:
    return x.isoformat()


def build_rows(rng: random.Random):
    branches = [(i, n, c, o) for i, (n, c, o) in enumerate(BRANCHES, 1)]
    authors = [(i, f, ln, by, nat) for i, (f, ln, by, nat) in enumerate(AUTHORS, 1)]
    author_id = {a[2]: a[0] for a in authors}
    books = []
    ba = []
    for i, (title, year, genre, pub, pages, names) in enumerate(BOOKS, 1):
        isbn = f"978{rng.randrange(0, 10**10):010d}"
        books.append((i, title, isbn, year, genre, pub, pages))
        for n in names:
            ba.append((i, author_id[n]))
    copies = []
    for b in books:
        n = rng.choice([2, 3, 3, 4, 4, 5, 6, 8, 10])
        for _ in range(n):
            br = rng.choices(branches, [5, 3, 3, 2, 2, 2])[0]
            opened = dt.date.fromisoformat(br[3])
            acq = max(opened, dt.date(2005, 1, 1)) + dt.timedelta(
                days=rng.randrange(0, (dt.date(2024, 6, 1) - max(opened, dt.date(2005, 1, 1))).days))
            age = (REF - acq).days
            cond = rng.choices(["new", "good", "worn", "damaged"],
                               [3, 6, 2, 1] if age < 1500 else [0, 5, 5, 2])[0]
            copies.append([len(copies) + 1, b[0], br[0], _d(acq), cond])
    copies.sort(key=lambda c: c[0])
    members = []
    used = set()
    for mid in range(1, 361):
        fn, ln = rng.choice(FIRST), rng.choice(LAST)
        base = f"{fn.lower()}.{ln.lower()}"
        email = f"{base}@mail.example.org"
        k = 2
        while email in used:
            email = f"{base}{k}@mail.example.org"
            k += 1
        used.add(email)
        city = rng.choice(MEMBER_CITIES)
        local = [b for b in branches if b[2] == city]
        home = rng.choice(local) if local else rng.choice(branches[:3])
        join = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(0, 3600))
        mtype = rng.choices(["standard", "student", "senior", "premium"], [50, 20, 18, 12])[0]
        members.append((mid, fn, ln, email, city, _d(join), mtype, home[0]))

    # loans: a copy is lent to one member at a time
    busy_until: dict[int, dt.date | None] = {}
    popularity = [rng.choice([1, 1, 2, 3, 5, 8]) for _ in books]
    never = set(rng.sample(range(len(books)), 4))  # a few books nobody borrows
    for i in never:
        popularity[i] = 0
    copies_of: dict[int, list] = {}
    for c in copies:
        copies_of.setdefault(c[1], []).append(c)
    member_w = [rng.choice([1, 1, 1, 2, 3, 6]) for _ in members]
    raw = []
    day = dt.date(2023, 1, 2)
    while day <= dt.date(2024, 12, 28):
        for _ in range(rng.choice([1, 2, 3, 3, 4])):
            b = rng.choices(books, popularity)[0]
            cands = [c for c in copies_of[b[0]] if c[3] <= _d(day) and (
                c[0] not in busy_until or (busy_until[c[0]] is not None and busy_until[c[0]] < day))]
            if not cands:
                continue
            c = rng.choice(cands)
            m = rng.choices(members, member_w)[0]
            if dt.date.fromisoformat(m[5]) > day:
                continue
            due = day + dt.timedelta(days=LOAN_DAYS)
            r = rng.random()
            if r < 0.04:
                ret = None
            else:
                ret = day + dt.timedelta(days=rng.choice([3, 5, 7, 10, 12, 14, 17, 19, 20, 21, 21, 24, 28, 35, 45]))
                if ret > REF:
                    ret = None
            busy_until[c[0]] = ret
            raw.append((c[0], m[0], _d(day), _d(due), _d(ret) if ret else None))
        day += dt.timedelta(days=1)
    loans = [(i, *r) for i, r in enumerate(raw, 1)]
    fines = []
    for loan in loans:
        due = dt.date.fromisoformat(loan[4])
        if loan[5] is not None:
            ret = dt.date.fromisoformat(loan[5])
            if ret > due:
                amount = min(2000, (ret - due).days * FINE_PER_DAY)
                paid = None
                if rng.random() < 0.7:
                    p = ret + dt.timedelta(days=rng.randrange(0, 60))
                    paid = _d(p) if p <= REF else None
                fines.append((len(fines) + 1, loan[0], amount, _d(ret), paid))
        elif due + dt.timedelta(days=30) < REF:
            # long-overdue loans get a lost-item fine 30 days after the due date
            fines.append((len(fines) + 1, loan[0], 2000, _d(due + dt.timedelta(days=30)), None))
    return [
        ("branches", ["branch_id", "name", "city", "opened_date"], branches),
        ("authors", ["author_id", "first_name", "last_name", "birth_year", "nationality"], authors),
        ("books", ["book_id", "title", "isbn", "publication_year", "genre", "publisher", "page_count"], books),
        ("book_authors", ["book_id", "author_id"], ba),
        ("copies", ["copy_id", "book_id", "branch_id", "acquired_date", "condition"], [tuple(c) for c in copies]),
        ("members", ["member_id", "first_name", "last_name", "email", "city", "join_date", "membership_type",
                     "home_branch_id"], members),
        ("loans", ["loan_id", "copy_id", "member_id", "loan_date", "due_date", "return_date"], loans),
        ("fines", ["fine_id", "loan_id", "amount_cents", "issued_date", "paid_date"], fines),
    ]


# ---------------------------------------------------------------------------
# Slots
# ---------------------------------------------------------------------------

AUTHOR = ("SELECT T1.first_name, T1.last_name FROM authors AS T1 JOIN book_authors AS T2 ON T1.author_id = "
          "T2.author_id")
TITLE = "SELECT title FROM books"
LENT_TITLE = ("SELECT T1.title FROM books AS T1 JOIN copies AS T2 ON T1.book_id = T2.book_id JOIN loans AS T3 ON "
              "T2.copy_id = T3.copy_id")
GENRE = "SELECT genre FROM books"
BRANCH = "SELECT name FROM branches"
MEMBER_EMAIL = "SELECT T1.email FROM members AS T1 JOIN loans AS T2 ON T1.member_id = T2.member_id"
MEMBER_CITY = "SELECT city FROM members"
NATIONALITY = "SELECT nationality FROM authors"
MTYPE = ["standard", "student", "senior", "premium"]
YEAR = ["2023", "2024"]


def loan_month(rng, db):
    return {"ym": month_v(f"{rng.choice(YEAR)}-{rng.randrange(1, 13):02d}", rng)}


def ref_day(rng, db):
    d = dt.date(2024, rng.randrange(1, 13), rng.choice([1, 10, 15, 20]))
    return {"d": date_v(d.isoformat(), rng)}


def two_branches(rng, db):
    rows = sorted(r[0] for r in db.execute(BRANCH).fetchall())
    a, b = rng.sample(rows, 2)
    return {"b1": a, "b2": b}


def title_word(rng, db):
    w = rng.choice(["Love", "Story", "Life", "Night", "Friend", "Time", "Day", "Name", "Sun", "Dark", "War"])
    return {"pat": V(f"%{w}%", w)}


def author_genre(rng, db):
    rows = sorted(db.execute(
        "SELECT DISTINCT T1.first_name, T1.last_name, T3.genre FROM authors AS T1 JOIN book_authors AS T2 ON "
        "T1.author_id = T2.author_id JOIN books AS T3 ON T2.book_id = T3.book_id").fetchall())
    fn, ln, g = rng.choice(rows)
    other = sorted({r[2] for r in rows if r[2] != g})
    return {"fn": fn, "ln": ln, "genre": rng.choice(other)}


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------

J_BA = ("books AS T1 JOIN book_authors AS T2 ON T1.book_id = T2.book_id JOIN authors AS T3 ON T2.author_id = "
        "T3.author_id")
J_LC = ("loans AS T1 JOIN copies AS T2 ON T1.copy_id = T2.copy_id JOIN books AS T3 ON T2.book_id = T3.book_id")
J_LM = "loans AS T1 JOIN members AS T2 ON T1.member_id = T2.member_id"
J_CB = "copies AS T1 JOIN branches AS T2 ON T1.branch_id = T2.branch_id"

TEMPLATES = [
    T("books_by_author", f"SELECT T1.title FROM {J_BA} WHERE T3.first_name = {{fn}} AND T3.last_name = {{ln}}", [
        "Which books by {fn} {ln} does the library have?", "List the titles written by {fn} {ln}.",
        "what {ln} books do we own?", "Show all books authored by {fn} {ln}."], {("fn", "ln"): AUTHOR}),
    T("authors_of_book", f"SELECT T3.first_name, T3.last_name FROM {J_BA} WHERE T1.title = {{title}}", [
        "Who wrote {title}?", "Name the author(s) of {title}.", "who is the author of {title}"],
      {"title": TITLE}),
    T("copies_at_branch",
      f"SELECT COUNT(*) FROM {J_CB} JOIN books AS T3 ON T1.book_id = T3.book_id WHERE T3.title = {{title}} "
      "AND T2.name = {branch}", [
          "How many copies of {title} does {branch} hold?", "Number of {title} copies at the {branch}.",
          "how many {title} copies are there in {branch}"],
      {("title", "branch"): "SELECT T3.title, T2.name FROM copies AS T1 JOIN branches AS T2 ON T1.branch_id = "
                            "T2.branch_id JOIN books AS T3 ON T1.book_id = T3.book_id"}),
    T("books_in_genre", "SELECT title, publication_year FROM books WHERE genre = {genre}", [
        "Which {genre} books are in the catalogue, and when were they published?",
        "List {genre} titles with their publication year.", "show me the {genre} books and their year"],
      {"genre": GENRE}),
    T("published_before", "SELECT title FROM books WHERE publication_year < {y}", [
        "Which books were published before {y}?", "Titles that came out earlier than {y}?",
        "list books older than {y} (publication year)"], {"y": [1850, 1900, 1930, 1950, 1970]}),
    T("members_joined_year", "SELECT first_name, last_name FROM members WHERE strftime('%Y', join_date) = {y}", [
        "Which members joined in {y}?", "List patrons who signed up for a library card in {y}.",
        "who became a member during {y}"], {"y": [str(y) for y in range(2015, 2025)]}),
    T("member_open_loans",
      f"SELECT T3.title, T1.loan_date FROM {J_LC} JOIN members AS T4 ON T1.member_id = T4.member_id "
      "WHERE T4.email = {email} AND T1.return_date IS NULL", [
          "Which books does {email} still have out?", "List the unreturned loans of {email} with loan dates.",
          "what has {email} borrowed and not brought back yet?"],
      {"email": "SELECT T1.email FROM members AS T1 JOIN loans AS T2 ON T1.member_id = T2.member_id "
                "WHERE T2.return_date IS NULL"}),
    T("overdue_on_date",
      "SELECT loan_id, member_id, due_date FROM loans WHERE (return_date IS NULL OR return_date > {d}) "
      "AND due_date < {d}", [
          "Which loans were overdue and still unreturned as of {d}?",
          "List loans that were past their due date and not yet returned on {d}.",
          "unreturned loans that were already past due on {d}"], {"x": ref_day}, split="dev"),
    T("loans_per_branch",
      f"SELECT T3.name, COUNT(*) FROM loans AS T1 JOIN copies AS T2 ON T1.copy_id = T2.copy_id JOIN branches AS T3 "
      "ON T2.branch_id = T3.branch_id GROUP BY T3.branch_id", [
          "How many loans has each branch made?", "Number of checkouts per branch.",
          "loan count by library branch"]),
    T("most_borrowed",
      f"SELECT T3.title, COUNT(*) FROM {J_LC} GROUP BY T3.book_id ORDER BY COUNT(*) DESC LIMIT {{n}}", [
          "What are the {n} most borrowed books, with loan counts?", "Top {n} titles by number of loans.",
          "the {n} most popular books (by checkouts)"], {"n": [3, 5, 10]}, tie_col=1),
    T("heavy_borrowers",
      f"SELECT T2.first_name, T2.last_name, COUNT(*) FROM {J_LM} GROUP BY T1.member_id HAVING COUNT(*) > {{n}}", [
          "Which members have borrowed more than {n} times? Show their loan counts.",
          "Patrons with over {n} loans, and how many each.", "members who checked out more than {n} items"],
      {"n": [6, 8, 10]}),
    T("avg_pages_genre", "SELECT genre, AVG(page_count) FROM books GROUP BY genre", [
        "What is the average page count per genre?", "Average book length in pages for each genre.",
        "avg number of pages by genre"]),
    T("unpaid_total_member",
      "SELECT SUM(T1.amount_cents) / 100.0 FROM fines AS T1 JOIN loans AS T2 ON T1.loan_id = T2.loan_id JOIN "
      "members AS T3 ON T2.member_id = T3.member_id WHERE T3.email = {email} AND T1.paid_date IS NULL", [
          "How much does {email} owe in unpaid fines, in dollars?",
          "Total outstanding fines for {email} (dollars)?", "what's the unpaid fine balance of {email} in $"],
      {"email": "SELECT T3.email FROM fines AS T1 JOIN loans AS T2 ON T1.loan_id = T2.loan_id JOIN members AS T3 "
                "ON T2.member_id = T3.member_id WHERE T1.paid_date IS NULL"}),
    T("members_unpaid_city",
      "SELECT DISTINCT T3.first_name, T3.last_name FROM fines AS T1 JOIN loans AS T2 ON T1.loan_id = T2.loan_id "
      "JOIN members AS T3 ON T2.member_id = T3.member_id WHERE T1.paid_date IS NULL AND T3.city = {city}", [
          "Which members from {city} have an unpaid fine?", "List {city} patrons with outstanding fines.",
          "who in {city} still owes a fine"], {"city": MEMBER_CITY}),
    T("never_borrowed",
      "SELECT title FROM books WHERE book_id NOT IN (SELECT T1.book_id FROM copies AS T1 JOIN loans AS T2 ON "
      "T1.copy_id = T2.copy_id)", [
          "Which books have never been borrowed?", "List titles that were never checked out.",
          "books nobody has ever borrowed"], split="test"),
    T("prolific_authors",
      "SELECT T1.first_name, T1.last_name, COUNT(*) FROM authors AS T1 JOIN book_authors AS T2 ON T1.author_id = "
      "T2.author_id GROUP BY T1.author_id HAVING COUNT(*) >= {n}", [
          "Which authors have at least {n} books in the catalogue?", "Authors with {n} or more titles, and how many.",
          "list writers with {n}+ books here"], {"n": [2, 3]}),
    T("coauthored", "SELECT T1.title FROM books AS T1 JOIN book_authors AS T2 ON T1.book_id = T2.book_id "
                    "GROUP BY T1.book_id HAVING COUNT(*) > 1", [
        "Which books have more than one author?", "List co-written titles.",
        "books written by two or more authors"], split="test"),
    T("avg_loan_days_branch",
      "SELECT T3.name, AVG(julianday(T1.return_date) - julianday(T1.loan_date)) FROM loans AS T1 JOIN copies AS T2 "
      "ON T1.copy_id = T2.copy_id JOIN branches AS T3 ON T2.branch_id = T3.branch_id WHERE T1.return_date IS NOT "
      "NULL GROUP BY T3.branch_id", [
          "On average, how many days are returned loans kept, per branch?",
          "Average loan length in days for each branch (returned loans only).",
          "avg days between checkout and return by branch"], split="test"),
    T("late_returns_month",
      "SELECT COUNT(*) FROM loans WHERE return_date > due_date AND strftime('%Y-%m', return_date) = {ym}", [
          "How many books were returned late in {ym}?", "Number of late returns during {ym}.",
          "count loans brought back after the due date in {ym}"], {"x": loan_month}),
    T("damaged_at_branch",
      f"SELECT T3.title FROM {J_CB} JOIN books AS T3 ON T1.book_id = T3.book_id WHERE T2.name = {{branch}} "
      "AND T1.condition = {cond}", [
          "Which copies at {branch} are in {cond} condition? Give the titles.",
          "Titles of {cond} copies held by the {branch}.", "list {cond} copies at {branch} (titles)"],
      {"branch": BRANCH, "cond": ["worn", "damaged"]}),
    T("title_like", "SELECT title, publication_year FROM books WHERE title LIKE {pat}", [
        "Which books have '{pat}' somewhere in the title?", "Find titles containing {pat}, with the year.",
        "books with {pat} in their title"], {"x": title_word}),
    T("authors_by_nationality", "SELECT first_name, last_name FROM authors WHERE nationality = {nat}", [
        "Which authors are {nat}?", "List the {nat} writers in our catalogue.", "{nat} authors, please"],
      {"nat": NATIONALITY}),
    T("unknown_birth", "SELECT first_name, last_name FROM authors WHERE birth_year IS NULL", [
        "For which authors is the birth year unknown?", "List authors with no recorded birth year.",
        "authors missing a birth year"], split="dev"),
    T("members_type_city",
      "SELECT first_name, last_name FROM members WHERE membership_type = {mt} AND city = {city}", [
          "Which {mt} members live in {city}?", "List {city} patrons holding a {mt} membership.",
          "{mt} card holders from {city}"], {"mt": MTYPE, "city": MEMBER_CITY}),
    T("union_author_or_genre",
      f"SELECT T1.title FROM {J_BA} WHERE T3.first_name = {{fn}} AND T3.last_name = {{ln}} UNION SELECT title "
      "FROM books WHERE genre = {genre}", [
          "List titles that are either by {fn} {ln} or in the {genre} genre.",
          "Books written by {fn} {ln} plus all {genre} books.",
          "which books are {genre} or written by {fn} {ln}?"], {"x": author_genre}),
    T("intersect_two_branches",
      "SELECT T3.email FROM loans AS T1 JOIN copies AS T2 ON T1.copy_id = T2.copy_id JOIN members AS T3 ON "
      "T1.member_id = T3.member_id JOIN branches AS T4 ON T2.branch_id = T4.branch_id WHERE T4.name = {b1} "
      "INTERSECT SELECT T3.email FROM loans AS T1 JOIN copies AS T2 ON T1.copy_id = T2.copy_id JOIN members AS T3 "
      "ON T1.member_id = T3.member_id JOIN branches AS T4 ON T2.branch_id = T4.branch_id WHERE T4.name = {b2}", [
          "Which members have borrowed from both {b1} and {b2}? Give emails.",
          "Emails of patrons who took out books at {b1} as well as at {b2}.",
          "members that used both {b1} and {b2} for loans (email)"], {"x": two_branches}, split="test"),
    T("except_home_never",
      "SELECT T1.email FROM members AS T1 JOIN branches AS T2 ON T1.home_branch_id = T2.branch_id WHERE "
      "T2.name = {branch} EXCEPT SELECT T1.email FROM members AS T1 JOIN loans AS T2 ON T1.member_id = "
      "T2.member_id", [
          "Which members whose home branch is {branch} have never borrowed anything? Emails please.",
          "Emails of {branch} members with no loans at all.",
          "patrons registered at {branch} who never checked out a book"], {"branch": BRANCH}, split="test"),
    T("exists_branch_has",
      "SELECT T1.name FROM branches AS T1 WHERE EXISTS (SELECT 1 FROM copies AS T2 JOIN books AS T3 ON "
      "T2.book_id = T3.book_id WHERE T2.branch_id = T1.branch_id AND T3.title = {title})", [
          "Which branches have a copy of {title}?", "Where can I find {title}? List the branches holding it.",
          "branches that stock {title}"], {"title": TITLE}),
    T("not_exists_in_branch",
      "SELECT T1.title FROM books AS T1 WHERE T1.genre = {genre} AND NOT EXISTS (SELECT 1 FROM copies AS T2 "
      "JOIN branches AS T3 ON T2.branch_id = T3.branch_id WHERE T2.book_id = T1.book_id AND T3.name = {branch})", [
          "Which {genre} books are not available at all in {branch}?",
          "List {genre} titles that {branch} has no copy of.",
          "{genre} books missing from {branch}"], {"genre": GENRE, "branch": BRANCH}, split="test"),
    T("longer_than_genre_avg",
      "SELECT title, page_count FROM books WHERE genre = {genre} AND page_count > (SELECT AVG(page_count) FROM "
      "books WHERE genre = {genre})", [
          "Which {genre} books are longer than the average {genre} book?",
          "List {genre} titles with more pages than the genre average.",
          "above-average length {genre} books (pages)"], {"genre": GENRE}),
    T("loan_status_label",
      f"SELECT T3.title, T1.loan_date, CASE WHEN T1.return_date IS NULL THEN 'on loan' ELSE 'returned' END FROM "
      f"{J_LC} JOIN members AS T4 ON T1.member_id = T4.member_id WHERE T4.email = {{email}}", [
          "Show every loan of {email} with the title, loan date and whether it is returned or still on loan.",
          "For {email}, list borrowed titles, dates and a status of returned or on loan."],
      {"email": MEMBER_EMAIL}, split="test"),
    T("loans_of_book_coalesce",
      f"SELECT T1.loan_date, COALESCE(T1.return_date, 'not returned') FROM {J_LC} WHERE T3.title = {{title}}", [
          "List the loans of {title} with loan date and return date, showing 'not returned' if it is still out.",
          "For {title}, when was it borrowed and returned? Use not returned for open loans."],
      {"title": LENT_TITLE}, split="dev"),
    T("due_next_week",
      "SELECT loan_id, due_date FROM loans WHERE due_date BETWEEN {d} AND date({d}, '+7 days')", [
          "Which loans had a due date between {d} and 7 days later, both days included?",
          "List loans with a due date from {d} through the date one week later.",
          "loans due from {d} up to and including 7 days after it"], {"x": ref_day}),
    T("loans_per_month",
      "SELECT strftime('%m', loan_date), COUNT(*) FROM loans WHERE strftime('%Y', loan_date) = {y} "
      "GROUP BY strftime('%m', loan_date)", [
          "How many loans were made in each month of {y}?", "Monthly checkout counts for {y}.",
          "number of loans per month in {y}"], {"y": YEAR}),
    T("fines_year_dollars",
      "SELECT SUM(amount_cents) / 100.0 FROM fines WHERE strftime('%Y', issued_date) = {y}", [
          "What was the total amount of fines issued in {y}, in dollars?", "Sum of {y} fines in dollars?",
          "how many dollars of fines did we issue in {y}"], {"y": YEAR}),
    T("most_fined_members",
      "SELECT T3.first_name, T3.last_name, SUM(T1.amount_cents) FROM fines AS T1 JOIN loans AS T2 ON T1.loan_id = "
      "T2.loan_id JOIN members AS T3 ON T2.member_id = T3.member_id GROUP BY T3.member_id "
      "ORDER BY SUM(T1.amount_cents) DESC LIMIT {n}", [
          "Which {n} members have been fined the most in total (cents)?",
          "Top {n} members by total fine amount.", "the {n} patrons with the biggest fine totals"],
      {"n": [3, 5, 10]}, tie_col=2),
    T("days_to_pay",
      "SELECT AVG(julianday(paid_date) - julianday(issued_date)) FROM fines WHERE paid_date IS NOT NULL", [
          "On average, how many days does it take for a fine to be paid?",
          "Average days between a fine being issued and paid (paid fines only)."], split="test"),
    T("books_per_publisher",
      "SELECT publisher, COUNT(*) FROM books GROUP BY publisher ORDER BY COUNT(*) DESC", [
          "How many books do we have from each publisher, most first?",
          "Number of titles per publisher, sorted descending.", "books per publisher, biggest first"]),
    T("per_decade",
      "SELECT (publication_year / 10) * 10, COUNT(*) FROM books GROUP BY (publication_year / 10) * 10", [
          "How many books were published in each decade?", "Number of titles per publication decade.",
          "count of books by decade of publication"], split="test"),
    T("branch_most_copies",
      f"SELECT T2.name, COUNT(*) FROM {J_CB} GROUP BY T2.branch_id ORDER BY COUNT(*) DESC LIMIT {{n}}", [
          "Which {n} branches hold the most copies, and how many?",
          "Top {n} branches by number of copies.", "the {n} biggest branches by copy count"],
      {"n": [2, 3, 4]}, tie_col=1),
    T("genres_of_member",
      f"SELECT DISTINCT T3.genre FROM {J_LC} JOIN members AS T4 ON T1.member_id = T4.member_id "
      "WHERE T4.email = {email}", [
          "Which genres has {email} borrowed?", "List the distinct genres {email} has checked out.",
          "what genres does {email} read"], {"email": MEMBER_EMAIL}),
    T("member_history",
      f"SELECT T3.title, T1.loan_date FROM {J_LC} JOIN members AS T4 ON T1.member_id = T4.member_id "
      "WHERE T4.first_name = {fn} AND T4.last_name = {ln} ORDER BY T1.loan_date", [
          "What has {fn} {ln} borrowed? List titles by loan date.",
          "Borrowing history of {fn} {ln}, oldest first.", "show {fn} {ln}'s loans in date order"],
      {("fn", "ln"): "SELECT T1.first_name, T1.last_name FROM members AS T1 JOIN loans AS T2 ON T1.member_id = "
                     "T2.member_id GROUP BY T1.first_name, T1.last_name HAVING COUNT(DISTINCT T1.member_id) = 1"}),
    T("authors_born_before",
      "SELECT first_name, last_name, birth_year FROM authors WHERE birth_year < {y} ORDER BY birth_year", [
          "Which authors were born before {y}? Oldest first.", "Authors born earlier than {y}, by birth year.",
          "list writers born before {y}"], {"y": [1800, 1850, 1900, 1930]}),
    T("books_by_nationality",
      f"SELECT T3.nationality, COUNT(DISTINCT T1.book_id) FROM {J_BA} GROUP BY T3.nationality", [
          "How many books do we have by authors of each nationality?",
          "Number of distinct titles per author nationality.", "book count by nationality of the author"]),
    T("members_per_home_branch",
      "SELECT T2.name, COUNT(*) FROM members AS T1 JOIN branches AS T2 ON T1.home_branch_id = T2.branch_id "
      "GROUP BY T2.branch_id", [
          "How many members does each branch have as their home branch?",
          "Member count per home branch.", "members registered at each branch"]),
    T("branches_opened_before", "SELECT name, city FROM branches WHERE opened_date < {d}", [
        "Which branches opened before {d}?", "List branches established earlier than {d}, with city.",
        "branches that were already open before {d}"],
      {"x": lambda rng, db: {"d": date_v(f"{rng.choice([2000, 2005, 2010, 2015])}-01-01", rng)}}),
    T("loans_by_type_year",
      f"SELECT T2.membership_type, COUNT(*) FROM {J_LM} WHERE strftime('%Y', T1.loan_date) = {{y}} "
      "GROUP BY T2.membership_type", [
          "How many loans did each membership type make in {y}?", "{y} loan counts per membership type.",
          "checkouts by membership type for {y}"], {"y": YEAR}),
    T("isbn_of", "SELECT isbn FROM books WHERE title = {title}", [
        "What is the ISBN of {title}?", "Give me the ISBN for {title}.", "isbn of {title}?"], {"title": TITLE}),
    T("oldest_in_genre",
      "SELECT title, publication_year FROM books WHERE genre = {genre} ORDER BY publication_year LIMIT 1", [
          "What is the oldest {genre} book we have?", "Earliest published {genre} title and its year?",
          "oldest book in {genre}"], {"genre": GENRE}, tie_col=1),
    T("book_loan_count", f"SELECT COUNT(*) FROM {J_LC} WHERE T3.title = {{title}}", [
        "How many times has {title} been borrowed?", "Number of loans of {title}.",
        "how often was {title} checked out"], {"title": LENT_TITLE}),
    T("copies_acquired_year",
      f"SELECT T2.name, COUNT(*) FROM {J_CB} WHERE strftime('%Y', T1.acquired_date) = {{y}} GROUP BY T2.branch_id", [
          "How many copies did each branch acquire in {y}?", "Copies added per branch during {y}.",
          "new copies per branch in {y}"], {"y": [str(y) for y in range(2008, 2025)]}),
    T("borrowers_of_book",
      f"SELECT DISTINCT T4.first_name, T4.last_name FROM {J_LC} JOIN members AS T4 ON T1.member_id = "
      "T4.member_id WHERE T3.title = {title}", [
          "Who has borrowed {title}?", "List the members who checked out {title}.",
          "which patrons have read {title} (borrowed it)?"], {"title": LENT_TITLE}),
    T("avg_fine_by_type",
      "SELECT T3.membership_type, AVG(T1.amount_cents) FROM fines AS T1 JOIN loans AS T2 ON T1.loan_id = "
      "T2.loan_id JOIN members AS T3 ON T2.member_id = T3.member_id GROUP BY T3.membership_type", [
          "What is the average fine in cents for each membership type?",
          "Average fine amount (cents) per membership type."], split="test"),
    T("borrowers_without_fines",
      "SELECT first_name, last_name FROM members WHERE city = {city} AND member_id IN (SELECT member_id FROM loans) "
      "AND member_id NOT IN (SELECT T1.member_id FROM loans AS T1 JOIN fines AS T2 ON T1.loan_id = T2.loan_id)", [
          "Which {city} members have borrowed books but never been fined?",
          "List patrons from {city} with loans and no fines at all.",
          "{city} borrowers with a clean record (no fines)"], {"city": MEMBER_CITY}, split="test"),
    T("long_genres",
      "SELECT genre, AVG(page_count) FROM books GROUP BY genre HAVING AVG(page_count) > {n}", [
          "Which genres have an average page count above {n}?", "Genres whose books average more than {n} pages.",
          "genres with long books: avg pages over {n}"], {"n": [300, 350, 400]}),
    T("many_copies",
      "SELECT T2.title, COUNT(*) FROM copies AS T1 JOIN books AS T2 ON T1.book_id = T2.book_id "
      "GROUP BY T1.book_id HAVING COUNT(*) >= {n}", [
          "Which books have at least {n} copies across all branches?", "Titles with {n} or more copies, and counts.",
          "books we own {n}+ copies of"], {"n": [5, 6, 8]}),
    T("long_unreturned",
      "SELECT loan_id, loan_date FROM loans WHERE return_date IS NULL AND julianday('2024-12-31') - "
      "julianday(loan_date) > {n}", [
          "Which loans had been out for more than {n} days without return as of December 31, 2024?",
          "Unreturned loans older than {n} days at the end of 2024.",
          "loans still out after more than {n} days (reference date 2024-12-31)"], {"n": [30, 60, 90]}),
    T("loans_weekday",
      "SELECT strftime('%w', loan_date), COUNT(*) FROM loans GROUP BY strftime('%w', loan_date)", [
          "How many loans happen on each day of the week (0 = Sunday)?",
          "Count loans by weekday number, Sunday being 0."], split="test"),
    T("authors_read_by",
      "SELECT DISTINCT T5.first_name, T5.last_name FROM loans AS T1 JOIN copies AS T2 ON T1.copy_id = T2.copy_id "
      "JOIN book_authors AS T3 ON T2.book_id = T3.book_id JOIN authors AS T5 ON T3.author_id = T5.author_id "
      "JOIN members AS T4 ON T1.member_id = T4.member_id WHERE T4.email = {email}", [
          "Which authors has {email} borrowed books by?", "List the authors of all books {email} has checked out.",
          "whose books has {email} read (borrowed)?"], {"email": MEMBER_EMAIL}, split="test"),
    T("publisher_long_books",
      "SELECT title, page_count FROM books WHERE publisher = {pub} AND page_count > {n}", [
          "Which {pub} books have more than {n} pages?", "List titles from {pub} longer than {n} pages.",
          "{pub} books over {n} pages"],
      {"pub": "SELECT publisher FROM books GROUP BY publisher HAVING COUNT(*) >= 3", "n": [250, 300, 400]}),
    T("premium_overdue",
      f"SELECT DISTINCT T2.email FROM {J_LM} WHERE T2.membership_type = {{mt}} AND T1.return_date IS NULL "
      "AND T1.due_date < '2024-12-31'", [
          "Which {mt} members had an overdue unreturned book on December 31, 2024? Emails.",
          "Emails of {mt} patrons with a loan past due and not returned as of 2024-12-31."],
      {"mt": MTYPE}, split="dev"),
    T("member_count_type", "SELECT membership_type, COUNT(*) FROM members GROUP BY membership_type", [
        "How many members are there of each membership type?", "Members per membership type.",
        "count members by type of membership"], split="dev"),
    T("count_members_city", "SELECT COUNT(*) FROM members WHERE city = {city}", [
        "How many library members live in {city}?", "Number of patrons from {city}?",
        "how many members are from {city}"], {"city": MEMBER_CITY}),
    T("count_loans_year", "SELECT COUNT(*) FROM loans WHERE strftime('%Y', loan_date) = {y}", [
        "How many loans were made in {y}?", "Total checkouts in {y}?", "number of books lent out in {y}"],
      {"y": YEAR}, split="dev"),
    T("pages_of", "SELECT page_count FROM books WHERE title = {title}", [
        "How many pages does {title} have?", "Page count of {title}?", "how long is {title} in pages"],
      {"title": TITLE}),
    T("genre_count", "SELECT COUNT(*) FROM books WHERE genre = {genre}", [
        "How many {genre} books are in the catalogue?", "Number of titles in the {genre} genre.",
        "count the {genre} books"], {"genre": GENRE}),
]


def main() -> None:
    rng = random.Random(SEED)
    tables = build_rows(rng)
    build_domain("library", SCHEMA, tables, TEMPLATES, seed=SEED + 1)


if __name__ == "__main__":
    main()
