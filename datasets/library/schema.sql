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
