"""Generate datasets/hr/: a company's people data (schema, data, question/SQL splits).

Deterministic: `python3 tools/datasets/gen_hr.py` rewrites the folder
byte-identically. Python 3.11 standard library only.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common_a import T, V, build_domain, date_v, month_v  # noqa: E402

SEED = 4242

SCHEMA = """
-- Human resources. Salaries and budgets are INTEGER whole US dollars per year.
-- Dates are TEXT 'YYYY-MM-DD'. NULL end/termination dates mean "still ongoing".
CREATE TABLE departments (
    department_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    location_city TEXT NOT NULL,
    annual_budget INTEGER NOT NULL -- USD per year
);

CREATE TABLE jobs (
    job_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL UNIQUE,
    min_salary INTEGER NOT NULL, -- USD per year
    max_salary INTEGER NOT NULL -- USD per year
);

CREATE TABLE employees (
    employee_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    phone TEXT, -- NULL when not on file
    birth_date TEXT NOT NULL,
    hire_date TEXT NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs (job_id),
    department_id INTEGER NOT NULL REFERENCES departments (department_id),
    manager_id INTEGER REFERENCES employees (employee_id), -- NULL for the CEO
    salary INTEGER NOT NULL, -- current (or last) annual salary, USD
    commission_pct REAL, -- e.g. 0.10 for 10 %, NULL for roles without commission
    termination_date TEXT -- NULL while the person still works here
);

CREATE TABLE salary_history (
    history_id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    salary INTEGER NOT NULL, -- annual salary in USD during this period
    start_date TEXT NOT NULL,
    end_date TEXT, -- NULL for the current salary of an active employee
    change_reason TEXT NOT NULL -- 'hire', 'annual raise', 'promotion', 'market adjustment'
);

CREATE TABLE projects (
    project_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    department_id INTEGER NOT NULL REFERENCES departments (department_id),
    start_date TEXT NOT NULL,
    end_date TEXT, -- NULL while not finished
    budget INTEGER NOT NULL, -- USD
    status TEXT NOT NULL -- 'active', 'completed', 'on hold'
);

CREATE TABLE employee_projects (
    employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    project_id INTEGER NOT NULL REFERENCES projects (project_id),
    role TEXT NOT NULL, -- 'lead', 'developer', 'analyst', 'designer', 'tester'
    hours_per_week INTEGER NOT NULL,
    assigned_date TEXT NOT NULL,
    PRIMARY KEY (employee_id, project_id)
);

CREATE TABLE leave_requests (
    request_id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    leave_type TEXT NOT NULL, -- 'vacation', 'sick', 'parental', 'unpaid'
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL, -- last day of leave, inclusive
    status TEXT NOT NULL, -- 'approved', 'pending', 'rejected'
    approved_by INTEGER REFERENCES employees (employee_id) -- NULL while pending
);
"""

FIRST = [
    "Alice", "Brian", "Carla", "Derek", "Elena", "Frank", "Grace", "Henry", "Irene", "Jason",
    "Kate", "Leon", "Monica", "Nathan", "Olga", "Peter", "Quinn", "Rachel", "Samuel", "Tina",
    "Umar", "Vera", "Walter", "Xena", "Yusuf", "Zoe", "Aaron", "Bianca", "Colin", "Diana",
    "Edward", "Fiona", "George", "Helen", "Ivan", "Julia", "Kevin", "Laura", "Martin", "Nina",
    "Oscar", "Paula", "Ryan", "Sandra", "Tobias", "Ursula", "Victor", "Wendy", "Arjun", "Mei",
]
LAST = [
    "Abbott", "Barnes", "Carter", "Dawson", "Ellis", "Fisher", "Grant", "Hayes", "Ingram", "Jordan",
    "Keller", "Lambert", "Morgan", "Nash", "Owens", "Parker", "Quinn", "Reyes", "Sullivan", "Turner",
    "Underwood", "Vargas", "Warren", "Yates", "Zimmerman", "Bishop", "Coleman", "Duncan", "Foster", "Gibson",
    "Holland", "Jenkins", "Kim", "Lawson", "Meyer", "Nguyen", "Olsen", "Porter", "Russo", "Stone",
    "Tran", "Vaughn", "Wallace", "Chen", "Das", "Fischer", "Hoffman", "Ivanova", "Kaur", "Sato",
]

DEPARTMENTS = [
    # name, city, budget
    ("Executive", "New York", 1_200_000), ("Engineering", "San Francisco", 7_900_000),
    ("Sales", "Chicago", 5_200_000), ("Marketing", "New York", 2_400_000),
    ("Finance", "New York", 2_000_000), ("Human Resources", "Chicago", 1_300_000),
    ("Customer Support", "Austin", 2_600_000), ("Operations", "Austin", 2_200_000),
    ("Legal", "New York", 900_000), ("Research", "Boston", 3_500_000),
]

JOBS = [
    # title, min, max, departments
    ("Chief Executive Officer", 250_000, 400_000, ["Executive"]),
    ("Executive Assistant", 55_000, 80_000, ["Executive"]),
    ("Department Head", 150_000, 240_000, []),
    ("Software Engineer", 95_000, 150_000, ["Engineering"]),
    ("Senior Software Engineer", 135_000, 195_000, ["Engineering"]),
    ("QA Engineer", 75_000, 120_000, ["Engineering"]),
    ("Data Scientist", 110_000, 170_000, ["Engineering", "Research"]),
    ("Sales Representative", 50_000, 85_000, ["Sales"]),
    ("Account Executive", 70_000, 120_000, ["Sales"]),
    ("Marketing Specialist", 55_000, 90_000, ["Marketing"]),
    ("Content Writer", 50_000, 78_000, ["Marketing"]),
    ("Accountant", 60_000, 95_000, ["Finance"]),
    ("Financial Analyst", 70_000, 115_000, ["Finance"]),
    ("HR Specialist", 55_000, 85_000, ["Human Resources"]),
    ("Recruiter", 55_000, 90_000, ["Human Resources"]),
    ("Support Agent", 40_000, 60_000, ["Customer Support"]),
    ("Support Team Lead", 58_000, 80_000, ["Customer Support"]),
    ("Operations Analyst", 60_000, 95_000, ["Operations"]),
    ("Logistics Coordinator", 48_000, 72_000, ["Operations"]),
    ("Legal Counsel", 120_000, 190_000, ["Legal"]),
    ("Paralegal", 50_000, 75_000, ["Legal"]),
    ("Research Scientist", 105_000, 165_000, ["Research"]),
]
DEPT_SIZE = {"Executive": 4, "Engineering": 70, "Sales": 40, "Marketing": 18, "Finance": 16,
             "Human Resources": 12, "Customer Support": 36, "Operations": 20, "Legal": 8, "Research": 26}

PROJECTS = {
    "Engineering": ["Payments Platform Rewrite", "Mobile App 3.0", "Cloud Migration", "Search Revamp",
                    "API Gateway", "Observability Stack", "Checkout Redesign"],
    "Sales": ["Enterprise Outreach 2024", "CRM Cleanup", "Partner Program", "EMEA Expansion"],
    "Marketing": ["Brand Refresh", "Spring Campaign", "Website Relaunch", "Customer Stories"],
    "Finance": ["ERP Upgrade", "Budget Automation", "Audit Readiness"],
    "Human Resources": ["Onboarding Portal", "Leadership Training", "Pay Equity Review"],
    "Customer Support": ["Chatbot Pilot", "Knowledge Base Overhaul", "24-7 Coverage"],
    "Operations": ["Warehouse Automation", "Vendor Consolidation", "Fleet Tracking"],
    "Legal": ["Contract Repository", "GDPR Compliance"],
    "Research": ["Recommendation Models", "Demand Forecasting", "Fraud Detection Study", "Customer Churn Study"],
    "Executive": ["Strategy 2025"],
}
ROLES = ["developer", "analyst", "designer", "tester"]
REF = dt.date(2024, 12, 31)


def _d(x: dt.date) -> str:
    return x.isoformat()


def build_rows(rng: random.Random):
    depts = [(i, n, c, b) for i, (n, c, b) in enumerate(DEPARTMENTS, 1)]
    dept_id = {n: i for i, n, _c, _b in depts}
    jobs = [(i, t, lo, hi) for i, (t, lo, hi, _d2) in enumerate(JOBS, 1)]
    job_id = {t: i for i, t, _lo, _hi in jobs}
    job_band = {t: (lo, hi) for t, lo, hi, _ in JOBS}

    emps = []  # mutable lists, converted to tuples later
    used = set()

    def new_emp(dept, title, manager, earliest, latest):
        fn, ln = rng.choice(FIRST), rng.choice(LAST)
        base = f"{fn[0].lower()}{ln.lower()}"
        email = f"{base}@corp.example.com"
        k = 2
        while email in used:
            email = f"{base}{k}@corp.example.com"
            k += 1
        used.add(email)
        hire = earliest + dt.timedelta(days=rng.randrange(0, max(1, (latest - earliest).days)))
        birth = hire - dt.timedelta(days=rng.randrange(22 * 365, 50 * 365))
        if title in ("Chief Executive Officer", "Department Head"):
            birth = hire - dt.timedelta(days=rng.randrange(36 * 365, 52 * 365))
        lo, hi = job_band[title]
        salary = int(round(rng.uniform(lo, hi) / 500) * 500)
        if rng.random() < 0.03:
            salary = hi + rng.choice([2000, 5000, 8000])  # a few out-of-band salaries
        comm = None
        if title in ("Sales Representative", "Account Executive"):
            comm = rng.choice([0.05, 0.08, 0.10, 0.12, 0.15])
        phone = None if rng.random() < 0.14 else f"+1-555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"
        term = None
        if rng.random() < 0.11 and title not in ("Chief Executive Officer", "Department Head"):
            t = hire + dt.timedelta(days=rng.randrange(120, 2500))
            if t < REF:
                term = _d(t)
        eid = len(emps) + 1
        emps.append([eid, fn, ln, email, phone, _d(birth), _d(hire), job_id[title], dept_id[dept], manager,
                     salary, comm, term])
        return eid

    ceo = new_emp("Executive", "Chief Executive Officer", None, dt.date(2011, 1, 1), dt.date(2011, 6, 1))
    heads = {}
    for name, _c, _b in DEPARTMENTS:
        if name == "Executive":
            continue
        heads[name] = new_emp(name, "Department Head", ceo, dt.date(2011, 6, 1), dt.date(2016, 1, 1))
    for _ in range(2):
        new_emp("Executive", "Executive Assistant", ceo, dt.date(2012, 1, 1), dt.date(2023, 1, 1))
    # team leads: senior titles report to the head, others to a lead or the head
    for name, size in DEPT_SIZE.items():
        if name == "Executive":
            continue
        titles = [t for t, _lo, _hi, ds in JOBS if name in ds]
        leads = []
        for _ in range(max(1, size // 12)):
            t = titles[0] if name != "Engineering" else "Senior Software Engineer"
            if name == "Customer Support":
                t = "Support Team Lead"
            leads.append(new_emp(name, t, heads[name], dt.date(2013, 1, 1), dt.date(2019, 1, 1)))
        for _ in range(size - len(leads) - 1):
            t = rng.choice(titles)
            mgr = rng.choice(leads + [heads[name]])
            new_emp(name, t, mgr, dt.date(2015, 1, 1), dt.date(2024, 12, 1))
    # a few employees whose manager sits in another department (matrix reporting)
    for e in rng.sample(emps[15:], 6):
        other = rng.choice([h for d, h in sorted(heads.items()) if dept_id[d] != e[8]])
        if emps[other - 1][6] < e[6]:
            e[9] = other

    # salary history: walk from a hire salary up to the current salary
    hist = []
    for e in emps:
        hire = dt.date.fromisoformat(e[6])
        end = dt.date.fromisoformat(e[12]) if e[12] else REF
        cur = e[10]
        steps = []
        d = hire
        while True:
            d = d + dt.timedelta(days=rng.randrange(330, 800))
            if d >= end:
                break
            steps.append(d)
        n = len(steps)
        sal = int(round(cur / (1.035 ** n) / 500) * 500) if n else cur
        dates = [hire] + steps
        reasons = ["hire"] + [rng.choices(["annual raise", "promotion", "market adjustment"], [70, 15, 15])[0]
                              for _ in steps]
        for i, (sd, reason) in enumerate(zip(dates, reasons)):
            if i == len(dates) - 1:
                s = cur
                ed = e[12]
            else:
                s = sal if i == 0 else int(round(sal * (1.035 ** i) / 500) * 500)
                ed = _d(dates[i + 1] - dt.timedelta(days=1))
            hist.append((len(hist) + 1, e[0], s, _d(sd), ed, reason))

    projs = []
    for dname, names in PROJECTS.items():
        for pname in names:
            start = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randrange(0, 1350))
            status = rng.choices(["active", "completed", "on hold"], [50, 38, 12])[0]
            end = None
            if status == "completed":
                e2 = start + dt.timedelta(days=rng.randrange(90, 600))
                end = _d(min(e2, REF - dt.timedelta(days=5)))
            budget = rng.randrange(40, 900) * 1000
            projs.append((len(projs) + 1, pname, dept_id[dname], _d(start), end, budget, status))
    projs.sort(key=lambda p: p[0])

    active = [e for e in emps if e[12] is None]
    by_dept = {}
    for e in active:
        by_dept.setdefault(e[8], []).append(e)
    ep = []
    for p in projs:
        pool = by_dept[p[2]]
        k = min(len(pool), rng.randrange(4, 14))
        members = rng.sample(pool, k)
        if rng.random() < 0.4:
            others = [e for e in active if e[8] != p[2] and e not in members]
            members += rng.sample(others, rng.randrange(1, 3))
        pstart = dt.date.fromisoformat(p[3])
        for i, e in enumerate(members):
            role = "lead" if i == 0 else rng.choice(ROLES)
            hire = dt.date.fromisoformat(e[6])
            assigned = max(pstart, hire) + dt.timedelta(days=rng.randrange(0, 120))
            if p[4] and assigned > dt.date.fromisoformat(p[4]):
                assigned = max(pstart, hire)
            if assigned > REF:
                assigned = REF
            ep.append((e[0], p[0], role, rng.choice([4, 8, 10, 12, 16, 20, 24, 30, 40]), _d(assigned)))
    ep.sort(key=lambda r: (r[1], r[0]))

    leaves = []
    for _ in range(480):
        e = rng.choice(emps)
        hire = dt.date.fromisoformat(e[6])
        lo = max(hire, dt.date(2023, 1, 1))
        hi = dt.date.fromisoformat(e[12]) if e[12] else dt.date(2024, 12, 20)
        if lo >= hi:
            continue
        start = lo + dt.timedelta(days=rng.randrange(0, (hi - lo).days))
        kind = rng.choices(["vacation", "sick", "parental", "unpaid"], [60, 28, 5, 7])[0]
        length = {"vacation": rng.randrange(1, 15), "sick": rng.randrange(1, 6),
                  "parental": rng.randrange(30, 120), "unpaid": rng.randrange(1, 20)}[kind]
        end = start + dt.timedelta(days=length - 1)
        status = "approved" if start < dt.date(2024, 11, 15) and rng.random() < 0.9 else rng.choice(
            ["pending", "rejected", "approved"])
        appr = None if status == "pending" else (e[9] or e[0])
        leaves.append([e[0], kind, _d(start), _d(end), status, appr])
    leaves.sort(key=lambda r: (r[2], r[0]))
    leave_rows = [(i, *r) for i, r in enumerate(leaves, 1)]

    return [
        ("departments", ["department_id", "name", "location_city", "annual_budget"], depts),
        ("jobs", ["job_id", "title", "min_salary", "max_salary"], jobs),
        ("employees", ["employee_id", "first_name", "last_name", "email", "phone", "birth_date", "hire_date",
                       "job_id", "department_id", "manager_id", "salary", "commission_pct", "termination_date"],
         [tuple(e) for e in emps]),
        ("salary_history", ["history_id", "employee_id", "salary", "start_date", "end_date", "change_reason"], hist),
        ("projects", ["project_id", "name", "department_id", "start_date", "end_date", "budget", "status"], projs),
        ("employee_projects", ["employee_id", "project_id", "role", "hours_per_week", "assigned_date"], ep),
        ("leave_requests", ["request_id", "employee_id", "leave_type", "start_date", "end_date", "status",
                            "approved_by"], leave_rows),
    ]


# ---------------------------------------------------------------------------
# Slots
# ---------------------------------------------------------------------------

DEPT = "SELECT name FROM departments WHERE name != 'Executive'"
BIG_DEPT = ("SELECT T2.name FROM employees AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id "
            "GROUP BY T2.department_id HAVING COUNT(*) >= 15")
TITLE = "SELECT title FROM jobs WHERE job_id IN (SELECT job_id FROM employees) AND title != 'Chief Executive Officer'"
MANAGER = ("SELECT T2.first_name, T2.last_name FROM employees AS T1 JOIN employees AS T2 ON T1.manager_id = "
           "T2.employee_id GROUP BY T2.employee_id HAVING COUNT(*) >= 2 AND T2.employee_id IN (SELECT MIN(employee_id) "
           "FROM employees GROUP BY first_name, last_name HAVING COUNT(*) = 1)")
EMAIL = "SELECT email FROM employees"
ACTIVE_EMAIL = "SELECT email FROM employees WHERE termination_date IS NULL AND hire_date < '2021-01-01'"
PROJECT = "SELECT name FROM projects"
CITY = "SELECT location_city FROM departments"
HIRE_YEAR = [str(y) for y in range(2015, 2025)]
LEAVE_TYPE = ["vacation", "sick", "parental", "unpaid"]
YEAR = ["2023", "2024"]


def salary(rng, db):
    s = rng.choice([60_000, 80_000, 100_000, 120_000, 150_000])
    return {"s": s, "stext": V(s, f"{s:,}")}


def tenure(rng, db):
    n = rng.choice([3, 5, 8, 10])
    return {"mod": V(f"-{n} years", str(n))}


def leave_month(rng, db):
    y = rng.choice(YEAR)
    return {"ym": month_v(f"{y}-{rng.randrange(1, 13):02d}", rng)}


def hire_window(rng, db):
    a = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randrange(0, 2900))
    b = a + dt.timedelta(days=rng.choice([90, 120, 180, 365]))
    style = rng.randrange(4)
    return {"d1": date_v(a.isoformat(), rng, style), "d2": date_v(b.isoformat(), rng, style)}


def letter(rng, db):
    ch = rng.choice("BCDFGHJKLMNPRSTW")
    return {"pat": V(f"{ch}%", ch)}


def dept_title(rng, db):
    rows = sorted(db.execute(
        "SELECT DISTINCT T2.name, T3.title FROM employees AS T1 JOIN departments AS T2 ON T1.department_id = "
        "T2.department_id JOIN jobs AS T3 ON T1.job_id = T3.job_id").fetchall())
    d, t = rng.choice(rows)
    others = sorted({r[1] for r in rows if r[0] != d})
    return {"dept": d, "title": rng.choice(others)}


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------

J_ED = "employees AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id"
J_EJ = "employees AS T1 JOIN jobs AS T2 ON T1.job_id = T2.job_id"
J_EP = ("employees AS T1 JOIN employee_projects AS T2 ON T1.employee_id = T2.employee_id JOIN projects AS T3 "
        "ON T2.project_id = T3.project_id")
ACTIVE = "termination_date IS NULL"

TEMPLATES = [
    T("count_dept", f"SELECT COUNT(*) FROM {J_ED} WHERE T2.name = {{dept}} AND T1.{ACTIVE}", [
        "How many people currently work in {dept}?", "Headcount of the {dept} department (current staff only)?",
        "how many active employees does {dept} have", "Number of current employees in {dept}."],
      {"dept": DEPT}),
    T("ceo", "SELECT first_name, last_name FROM employees WHERE manager_id IS NULL", [
        "Who is the employee without a manager?", "Which employee does not report to anyone?",
        "Name the person at the top of the reporting chain (no manager)."], split="dev"),
    T("direct_reports",
      "SELECT T1.first_name, T1.last_name FROM employees AS T1 JOIN employees AS T2 ON T1.manager_id = "
      "T2.employee_id WHERE T2.first_name = {fn} AND T2.last_name = {ln} AND T1.termination_date IS NULL", [
          "Who currently reports directly to {fn} {ln}?", "List the current direct reports of {fn} {ln}.",
          "which current employees have {fn} {ln} as their manager?", "{fn} {ln}'s team members today, please"],
      {("fn", "ln"): MANAGER}),
    T("hired_year", "SELECT first_name, last_name, hire_date FROM employees WHERE strftime('%Y', hire_date) = {y}", [
        "Who was hired in {y}?", "List employees who started in {y}, with their hire date.",
        "Which staff joined the company during {y}?", "employees with a {y} start date"], {"y": HIRE_YEAR}),
    T("avg_salary_dept",
      f"SELECT T2.name, AVG(T1.salary) FROM {J_ED} WHERE T1.{ACTIVE} GROUP BY T2.department_id", [
          "What is the average salary of current employees in each department?",
          "Average pay by department, active staff only.", "avg salary per department for people still employed"]),
    T("top_paid",
      f"SELECT first_name, last_name, salary FROM employees WHERE {ACTIVE} ORDER BY salary DESC LIMIT {{n}}", [
          "Who are the {n} highest-paid current employees?", "Top {n} salaries among active staff, with names.",
          "list the {n} best paid people still working here"], {"n": [3, 5, 10]}, tie_col=2),
    T("by_title", f"SELECT T1.first_name, T1.last_name FROM {J_EJ} WHERE T2.title = {{title}} AND T1.{ACTIVE}", [
        "Which current employees hold the job title {title}?", "List everyone currently working as a {title}.",
        "who are our {title}s right now?", "Names of active employees whose position is {title}."],
      {"title": TITLE}),
    T("salary_gt_dept",
      f"SELECT T1.first_name, T1.last_name, T1.salary FROM {J_ED} WHERE T2.name = {{dept}} AND T1.salary > {{s}} "
      f"AND T1.{ACTIVE}", [
          "Which current employees in {dept} earn more than ${stext}?",
          "List current {dept} staff with a salary above {stext} dollars.",
          "who in {dept} (still employed) makes over {stext} a year?"], {"dept": DEPT, "x": salary}),
    T("count_per_title", f"SELECT T2.title, COUNT(*) FROM {J_EJ} WHERE T1.{ACTIVE} GROUP BY T2.job_id", [
        "How many current employees hold each job title?", "Headcount per job title (active staff).",
        "number of active people per position"]),
    T("big_depts",
      f"SELECT T2.name, COUNT(*) FROM {J_ED} WHERE T1.{ACTIVE} GROUP BY T2.department_id HAVING COUNT(*) > {{n}}", [
          "Which departments have more than {n} current employees?",
          "Departments with a headcount above {n} (active staff), with the count.",
          "list departments that employ over {n} people right now"], {"n": [10, 15, 20, 30]}),
    T("out_of_band",
      f"SELECT T1.first_name, T1.last_name, T1.salary, T2.max_salary FROM {J_EJ} WHERE T1.salary > T2.max_salary "
      f"AND T1.{ACTIVE}", [
          "Which current employees are paid above the maximum salary of their job?",
          "List active people whose salary exceeds their job's salary band maximum.",
          "who (still employed) earns more than the top of their pay band?"], split="test"),
    T("commission_gt",
      f"SELECT first_name, last_name, commission_pct FROM employees WHERE commission_pct >= {{c}} AND {ACTIVE}", [
          "Which current employees have a commission rate of at least {ctext}?",
          "List active staff whose commission is {ctext} or more.", "who currently gets {ctext} commission or higher"],
      {("c", "ctext"): [(V(0.10, "10%"), "10%"), (V(0.12, "12%"), "12%"), (V(0.15, "15%"), "15%")]}),
    T("phone_coalesce",
      f"SELECT T1.first_name, T1.last_name, COALESCE(T1.phone, 'no phone') FROM {J_ED} WHERE T2.name = {{dept}}", [
          "List {dept} employees with their phone number, or 'no phone' when we do not have one.",
          "Phone list for {dept}; write no phone where the number is missing."], {"dept": DEPT}, split="dev"),
    T("missing_phone_dept",
      f"SELECT COUNT(*) FROM {J_ED} WHERE T2.name = {{dept}} AND T1.phone IS NULL AND T1.{ACTIVE}", [
          "How many current employees in {dept} have no phone number on file?",
          "Count active {dept} staff with a missing phone.",
          "number of people currently in {dept} without a phone number"],
      {"dept": BIG_DEPT}),
    T("terminated_year",
      "SELECT first_name, last_name, termination_date FROM employees WHERE strftime('%Y', termination_date) = {y}", [
          "Who left the company in {y}?", "List employees whose employment ended during {y}.",
          "which employees were terminated in {y}, and when?"],
      {"y": "SELECT strftime('%Y', termination_date) FROM employees WHERE termination_date IS NOT NULL"}),
    T("long_tenure",
      f"SELECT first_name, last_name, hire_date FROM employees WHERE {ACTIVE} AND hire_date <= "
      "date('2024-12-31', {mod})", [
          "Which current employees had been with us at least {mod} years by the end of 2024?",
          "List active staff hired {mod} or more years before 2024-12-31.",
          "who still works here and had {mod}+ years of service on December 31, 2024?"], {"x": tenure}),
    T("avg_tenure_dept",
      f"SELECT T2.name, AVG(julianday('2024-12-31') - julianday(T1.hire_date)) / 365.25 FROM {J_ED} "
      f"WHERE T1.{ACTIVE} GROUP BY T2.department_id", [
          "What is the average tenure in years of current employees per department, as of 2024-12-31?",
          "Average years of service by department at the end of 2024 (active staff).",
          "per department, how long have current people been here on average (years, as of Dec 31 2024)?"],
      split="test"),
    T("salary_history_of",
      "SELECT salary, start_date, end_date FROM salary_history WHERE employee_id = (SELECT employee_id FROM "
      "employees WHERE email = {email}) ORDER BY start_date", [
          "Show the salary history of the employee with email {email}, oldest first.",
          "How has the pay of {email} changed over time? List salaries with their periods.",
          "salary records for {email} in chronological order"], {"email": ACTIVE_EMAIL}),
    T("promoted_year",
      "SELECT DISTINCT T1.first_name, T1.last_name FROM employees AS T1 JOIN salary_history AS T2 ON "
      "T1.employee_id = T2.employee_id WHERE T2.change_reason = 'promotion' AND strftime('%Y', T2.start_date) = {y}",
      ["Who was promoted in {y}?", "List employees that received a promotion during {y}.",
       "which people got promoted in {y}"], {"y": [str(y) for y in range(2017, 2025)]}),
    T("project_members",
      f"SELECT T1.first_name, T1.last_name, T2.role FROM {J_EP} WHERE T3.name = {{proj}}", [
          "Who works on the {proj} project and in what role?", "List the members of {proj} with their roles.",
          "team of project {proj} (names and roles)"], {"proj": PROJECT}),
    T("project_lead",
      f"SELECT T1.first_name, T1.last_name FROM {J_EP} WHERE T3.name = {{proj}} AND T2.role = 'lead'", [
          "Who leads the {proj} project?", "Name the lead of {proj}.", "who is project lead on {proj}"],
      {"proj": PROJECT}),
    T("projects_per_dept",
      "SELECT T2.name, COUNT(*) FROM projects AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id "
      "GROUP BY T2.department_id", [
          "How many projects does each department own?", "Number of projects per department.",
          "project count by department"]),
    T("active_projects_dept",
      "SELECT T1.name, T1.start_date FROM projects AS T1 JOIN departments AS T2 ON T1.department_id = "
      "T2.department_id WHERE T2.name = {dept} AND T1.end_date IS NULL", [
          "Which {dept} projects are not finished yet? Show start dates.",
          "List unfinished projects of the {dept} department and when they started.",
          "open projects in {dept} (no end date)"],
      {"dept": "SELECT T2.name FROM projects AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id "
               "WHERE T1.end_date IS NULL"}),
    T("hours_per_project_dept",
      "SELECT T1.name, SUM(T2.hours_per_week) FROM projects AS T1 JOIN employee_projects AS T2 ON T1.project_id = "
      "T2.project_id JOIN departments AS T3 ON T1.department_id = T3.department_id WHERE T3.name = {dept} "
      "GROUP BY T1.project_id", [
          "How many weekly hours are allocated to each {dept} project in total?",
          "Total hours per week assigned per project in {dept}.",
          "sum of weekly hours on each project owned by {dept}"],
      {"dept": "SELECT T2.name FROM projects AS T1 JOIN departments AS T2 ON T1.department_id = T2.department_id"}),
    T("no_project_dept",
      f"SELECT T1.first_name, T1.last_name FROM {J_ED} WHERE T2.name = {{dept}} AND T1.{ACTIVE} AND "
      "T1.employee_id NOT IN (SELECT employee_id FROM employee_projects)", [
          "Which current {dept} employees are not assigned to any project?",
          "List active people in {dept} who have no project.",
          "{dept} staff (still employed) without a project assignment"], {"dept": BIG_DEPT}, split="test"),
    T("multi_project",
      "SELECT T1.first_name, T1.last_name, COUNT(*) FROM employees AS T1 JOIN employee_projects AS T2 ON "
      "T1.employee_id = T2.employee_id GROUP BY T1.employee_id HAVING COUNT(*) >= {n}", [
          "Which employees are on at least {n} projects? Include the number.",
          "People assigned to {n} or more projects, with counts.", "who works on {n}+ projects"], {"n": [2, 3]}),
    T("budget_gt",
      "SELECT name, budget FROM projects WHERE budget > {b} ORDER BY budget DESC", [
          "Which projects have a budget above ${btext}? Largest first.",
          "List projects with budgets over {btext} dollars, sorted by budget descending.",
          "projects costing more than {btext}, biggest budget first"],
      {("b", "btext"): [(b, f"{b:,}") for b in (300_000, 500_000, 700_000)]}),
    T("projects_started_year",
      "SELECT name, status FROM projects WHERE strftime('%Y', start_date) = {y}", [
          "Which projects started in {y}, and what is their status?", "Projects kicked off during {y} with status.",
          "list {y} projects and their current status"], {"y": ["2021", "2022", "2023", "2024"]}),
    T("longest_projects",
      "SELECT name, julianday(end_date) - julianday(start_date) FROM projects WHERE status = 'completed' "
      "ORDER BY julianday(end_date) - julianday(start_date) DESC LIMIT {n}", [
          "Which {n} completed projects took the longest, and how many days did each take?",
          "Top {n} longest completed projects by duration in days.",
          "the {n} completed projects that ran longest (days)"], {"n": [3, 5, 8]}, split="test", tie_col=1),
    T("approved_leave_days",
      "SELECT SUM(julianday(T1.end_date) - julianday(T1.start_date) + 1) FROM leave_requests AS T1 JOIN employees "
      "AS T2 ON T1.employee_id = T2.employee_id WHERE T2.email = {email} AND T1.status = 'approved' "
      "AND T1.leave_type = 'vacation'", [
          "How many days of approved vacation has {email} taken in total (start and end days included)?",
          "Total approved vacation days for {email}, counting both first and last day.",
          "sum of approved vacation days of {email}"],
      {"email": "SELECT T2.email FROM leave_requests AS T1 JOIN employees AS T2 ON T1.employee_id = T2.employee_id "
                "WHERE T1.status = 'approved' AND T1.leave_type = 'vacation'"}, split="test"),
    T("pending_leave_dept",
      "SELECT T2.first_name, T2.last_name, T1.start_date, T1.end_date FROM leave_requests AS T1 JOIN employees AS "
      "T2 ON T1.employee_id = T2.employee_id JOIN departments AS T3 ON T2.department_id = T3.department_id "
      "WHERE T1.status = 'pending' AND T3.name = {dept}", [
          "Which leave requests from {dept} are still pending?",
          "List pending time-off requests in {dept} with their dates.",
          "open leave requests for people in {dept}"],
      {"dept": "SELECT T3.name FROM leave_requests AS T1 JOIN employees AS T2 ON T1.employee_id = T2.employee_id "
               "JOIN departments AS T3 ON T2.department_id = T3.department_id WHERE T1.status = 'pending'"}),
    T("leave_per_type_year",
      "SELECT leave_type, COUNT(*) FROM leave_requests WHERE strftime('%Y', start_date) = {y} GROUP BY leave_type", [
          "How many leave requests of each type started in {y}?",
          "Breakdown of {y} leave requests by leave type.", "count of time off requests per type for {y}"],
      {"y": YEAR}),
    T("sick_in_month",
      "SELECT DISTINCT T2.first_name, T2.last_name FROM leave_requests AS T1 JOIN employees AS T2 ON "
      "T1.employee_id = T2.employee_id WHERE T1.leave_type = 'sick' AND strftime('%Y-%m', T1.start_date) = {ym}", [
          "Who took sick leave starting in {ym}?", "List employees with a sick leave that began in {ym}.",
          "which employees called in sick in {ym}"], {"x": leave_month}),
    T("most_reports",
      "SELECT T2.first_name, T2.last_name, COUNT(*) FROM employees AS T1 JOIN employees AS T2 ON T1.manager_id = "
      "T2.employee_id GROUP BY T1.manager_id ORDER BY COUNT(*) DESC LIMIT {n}", [
          "Which {n} managers have the most direct reports? Show how many.",
          "Top {n} managers by number of people reporting to them.",
          "the {n} managers with the biggest teams"], {"n": [3, 5, 8]}, tie_col=2),
    T("earn_more_than_manager",
      "SELECT T1.first_name, T1.last_name, T1.salary, T2.salary FROM employees AS T1 JOIN employees AS T2 ON "
      "T1.manager_id = T2.employee_id WHERE T1.salary > T2.salary AND T1.termination_date IS NULL", [
          "Which current employees earn more than their manager?",
          "List active people whose salary is higher than their manager's, with both salaries.",
          "who (still employed) makes more money than the person they report to?"], split="test"),
    T("above_dept_avg",
      f"SELECT T1.first_name, T1.last_name, T1.salary FROM {J_ED} WHERE T2.name = {{dept}} AND T1.{ACTIVE} AND "
      "T1.salary > (SELECT AVG(salary) FROM employees WHERE department_id = T1.department_id AND "
      "termination_date IS NULL)", [
          "Who in {dept} earns more than the department's average salary (current staff only)?",
          "List active {dept} employees paid above the average of active {dept} staff.",
          "current {dept} people with above-average pay for their department"], {"dept": BIG_DEPT}, split="test"),
    T("above_company_avg",
      f"SELECT first_name, last_name, salary FROM employees WHERE {ACTIVE} AND department_id = (SELECT "
      "department_id FROM departments WHERE name = {dept}) AND salary > (SELECT AVG(salary) FROM employees)", [
          "Which current {dept} employees earn more than the company-wide average salary?",
          "Active {dept} staff paid above the average salary of all employees.",
          "in {dept}, who (still employed) is above the overall average pay?"], {"dept": DEPT}),
    T("union_dept_or_title",
      f"SELECT T1.email FROM {J_ED} WHERE T2.name = {{dept}} AND T1.{ACTIVE} UNION SELECT T1.email FROM {J_EJ} "
      f"WHERE T2.title = {{title}} AND T1.{ACTIVE}", [
          "Give the emails of everyone currently in {dept} or currently working as a {title}.",
          "Email addresses of active employees in the {dept} department or with the title {title}.",
          "emails for current {dept} staff plus all current {title}s"], {"x": dept_title}),
    T("intersect_sick_vacation",
      "SELECT T1.email FROM employees AS T1 JOIN leave_requests AS T2 ON T1.employee_id = T2.employee_id JOIN "
      "departments AS T3 ON T1.department_id = T3.department_id WHERE T3.name = {dept} AND T2.leave_type = 'sick' "
      "INTERSECT SELECT T1.email FROM employees AS T1 JOIN leave_requests AS T2 ON T1.employee_id = T2.employee_id "
      "JOIN departments AS T3 ON T1.department_id = T3.department_id WHERE T3.name = {dept} AND "
      "T2.leave_type = 'vacation'", [
          "Which {dept} employees have requested both sick leave and vacation? Give emails.",
          "Emails of people in {dept} with at least one sick leave request and at least one vacation request.",
          "in {dept}, who has asked for both vacation and sick days (email)"], {"dept": BIG_DEPT}, split="test"),
    T("except_no_leave",
      f"SELECT T1.email FROM {J_ED} WHERE T2.name = {{dept}} AND T1.{ACTIVE} EXCEPT SELECT T1.email FROM "
      "employees AS T1 JOIN leave_requests AS T2 ON T1.employee_id = T2.employee_id", [
          "Which current {dept} employees have never requested leave? Give their emails.",
          "Emails of active {dept} staff without any leave request.",
          "{dept} people still here who never asked for time off"], {"dept": BIG_DEPT}),
    T("exists_big_project",
      "SELECT T1.name FROM departments AS T1 WHERE EXISTS (SELECT 1 FROM projects AS T2 WHERE T2.department_id = "
      "T1.department_id AND T2.budget > {b})", [
          "Which departments own at least one project with a budget over ${btext}?",
          "Departments that have any project budgeted above {btext} dollars.",
          "departments running a project bigger than {btext}"],
      {("b", "btext"): [(b, f"{b:,}") for b in (400_000, 600_000, 800_000)]}, split="dev"),
    T("no_active_project_dept",
      "SELECT name FROM departments WHERE department_id NOT IN (SELECT department_id FROM projects WHERE "
      "status = 'active')", [
          "Which departments have no active project?", "List departments without any project in active status.",
          "departments where nothing is active right now"], split="test"),
    T("salary_bands_dept",
      "SELECT CASE WHEN T1.salary < 70000 THEN 'low' WHEN T1.salary < 120000 THEN 'medium' ELSE 'high' END, "
      f"COUNT(*) FROM {J_ED} WHERE T2.name = {{dept}} AND T1.{ACTIVE} GROUP BY CASE WHEN T1.salary < 70000 THEN 'low' WHEN "
      "T1.salary < 120000 THEN 'medium' ELSE 'high' END", [
          "In {dept}, how many current employees earn under 70k (low), 70k to under 120k (medium) and 120k or more "
          "(high)?",
          "Count active {dept} salaries by band: low below 70,000, medium below 120,000, high otherwise."],
      {"dept": BIG_DEPT}, split="test"),
    T("status_label",
      "SELECT first_name, last_name, CASE WHEN termination_date IS NULL THEN 'active' ELSE 'former' END FROM "
      "employees WHERE strftime('%Y', hire_date) = {y}", [
          "For everyone hired in {y}, show whether they are still active or a former employee.",
          "List {y} hires labelled active or former."], {"y": HIRE_YEAR}),
    T("titles_in_dept",
      f"SELECT DISTINCT T3.title FROM {J_ED} JOIN jobs AS T3 ON T1.job_id = T3.job_id WHERE T2.name = {{dept}}", [
          "What job titles exist in the {dept} department?", "Distinct positions held by {dept} employees.",
          "which roles do we have in {dept}?"], {"dept": DEPT}),
    T("depts_in_city", "SELECT name FROM departments WHERE location_city = {city}", [
        "Which departments are located in {city}?", "Departments based in {city}?",
        "what teams sit in {city}"], {"city": CITY}),
    T("born_before",
      f"SELECT first_name, last_name, birth_date FROM employees WHERE {ACTIVE} AND birth_date < {{d}}", [
          "Which current employees were born before {d}?", "Active staff with a birth date earlier than {d}.",
          "list people still employed who were born before {d}"],
      {"x": lambda rng, db: {"d": date_v(f"{rng.choice([1965, 1968, 1970, 1972, 1975])}-01-01", rng)}}),
    T("young_hires",
      "SELECT first_name, last_name, hire_date FROM employees WHERE julianday(hire_date) - julianday(birth_date) "
      "< {a} * 365.25", [
          "Who was younger than {a} when they were hired?", "List employees hired before turning {a}.",
          "employees that joined under the age of {a}"], {"a": [25, 26, 28]}, split="test"),
    T("last_name_starts",
      f"SELECT first_name, last_name, email FROM employees WHERE last_name LIKE {{pat}} AND {ACTIVE}", [
          "Which current employees have a surname starting with {pat}? Include emails.",
          "List active staff whose last name begins with {pat}.",
          "current employees with last names beginning in {pat}"],
      {"x": letter}),
    T("raise_total",
      "SELECT MAX(salary) - MIN(salary) FROM salary_history WHERE employee_id = (SELECT employee_id FROM employees "
      "WHERE email = {email})", [
          "By how much has the salary of {email} grown from lowest to highest?",
          "Difference between the highest and lowest recorded salary of {email}?",
          "how big is {email}'s total salary increase (max minus min)"], {"email": ACTIVE_EMAIL}),
    T("hires_per_year_dept",
      f"SELECT strftime('%Y', T1.hire_date), COUNT(*) FROM {J_ED} WHERE T2.name = {{dept}} "
      "GROUP BY strftime('%Y', T1.hire_date)", [
          "How many people did {dept} hire each year?", "Yearly hires in the {dept} department.",
          "hiring count per year for {dept}"], {"dept": BIG_DEPT}),
    T("dept_budgets", "SELECT name, annual_budget FROM departments ORDER BY annual_budget DESC", [
        "List the departments by annual budget, largest first.", "Department budgets, sorted high to low.",
        "show every department's yearly budget from biggest to smallest"], split="dev"),
    T("payroll_dept",
      f"SELECT T2.name, SUM(T1.salary) FROM {J_ED} WHERE T1.{ACTIVE} GROUP BY T2.department_id "
      "ORDER BY SUM(T1.salary) DESC", [
          "What is the total annual payroll of current staff per department, highest first?",
          "Sum of active salaries by department, sorted descending.",
          "payroll per department (current employees), biggest first"]),
    T("payroll_over_budget",
      f"SELECT T2.name, SUM(T1.salary), T2.annual_budget FROM {J_ED} WHERE T1.{ACTIVE} GROUP BY T2.department_id "
      "HAVING SUM(T1.salary) > T2.annual_budget", [
          "Which departments spend more on current salaries than their annual budget?",
          "Departments whose active payroll exceeds the budget, with both figures.",
          "where is payroll over budget?"], split="test"),
    T("avg_salary_title",
      f"SELECT AVG(T1.salary) FROM {J_EJ} WHERE T2.title = {{title}} AND T1.{ACTIVE}", [
          "What is the average salary of current {title}s?", "Average pay for active employees titled {title}.",
          "how much does a {title} earn on average (active staff)?"], {"title": TITLE}),
    T("job_band", "SELECT min_salary, max_salary FROM jobs WHERE title = {title}", [
        "What is the salary range for the {title} position?", "Min and max salary of the {title} job.",
        "pay band for {title}"], {"title": "SELECT title FROM jobs"}),
    T("cross_dept_manager",
      "SELECT T1.first_name, T1.last_name FROM employees AS T1 JOIN employees AS T2 ON T1.manager_id = "
      "T2.employee_id WHERE T1.department_id != T2.department_id AND T2.manager_id IS NOT NULL AND "
      "T1.termination_date IS NULL", [
          "Which current employees report to a manager (other than the CEO) from a different department?",
          "List active people whose manager belongs to another department, ignoring reports of the CEO."], split="test"),
    T("hired_between",
      "SELECT first_name, last_name, hire_date FROM employees WHERE hire_date BETWEEN {d1} AND {d2}", [
          "Who was hired between {d1} and {d2}?", "List employees with a start date from {d1} to {d2}.",
          "which people joined between {d1} and {d2} (inclusive)?"], {"x": hire_window}),
    T("leave_approved_by",
      "SELECT COUNT(*) FROM leave_requests AS T1 JOIN employees AS T2 ON T1.approved_by = T2.employee_id "
      "WHERE T2.first_name = {fn} AND T2.last_name = {ln} AND T1.status = 'approved'", [
          "How many leave requests has {fn} {ln} approved?", "Number of time-off approvals given by {fn} {ln}.",
          "count of leave requests approved by {fn} {ln}"],
      {("fn", "ln"): "SELECT T2.first_name, T2.last_name FROM leave_requests AS T1 JOIN employees AS T2 ON "
                     "T1.approved_by = T2.employee_id WHERE T1.status = 'approved' AND T2.employee_id IN (SELECT "
                     "MIN(employee_id) FROM employees GROUP BY first_name, last_name HAVING COUNT(*) = 1)"}),
    T("staff_per_city",
      f"SELECT T2.location_city, COUNT(*) FROM {J_ED} WHERE T1.{ACTIVE} GROUP BY T2.location_city", [
          "How many current employees work in each city?", "Active headcount per office city.",
          "people per location (current staff)"]),
    T("projects_per_status", "SELECT status, COUNT(*) FROM projects GROUP BY status", [
        "How many projects are there in each status?", "Project count by status.",
        "number of projects active, completed and on hold"], split="dev"),
    T("avg_hours_role",
      "SELECT role, AVG(hours_per_week) FROM employee_projects GROUP BY role", [
          "What is the average weekly hours allocation for each project role?",
          "Average hours per week by role on projects.", "avg weekly hours per project role"], split="dev"),
    T("early_joiners",
      f"SELECT T1.first_name, T1.last_name, T2.assigned_date FROM {J_EP} WHERE T3.name = {{proj}} AND "
      "julianday(T2.assigned_date) - julianday(T3.start_date) <= {n}", [
          "Who joined the {proj} project within {n} days of its start?",
          "List members assigned to {proj} no more than {n} days after it started.",
          "people on {proj} from (almost) day one: assigned within {n} days of the start"],
      {"proj": PROJECT, "n": [30, 45, 60]}, split="test"),
    T("latest_hire_dept",
      f"SELECT T1.first_name, T1.last_name, T1.hire_date FROM {J_ED} WHERE T2.name = {{dept}} AND T1.{ACTIVE} "
      "ORDER BY T1.hire_date DESC LIMIT 1", [
          "Among current staff, who is the most recent hire in {dept}?",
          "Which active {dept} employee was hired last, and when?",
          "newest person still working in {dept}"], {"dept": DEPT}, tie_col=2),
    T("terminated_count_dept",
      f"SELECT T2.name, COUNT(*) FROM {J_ED} WHERE T1.termination_date IS NOT NULL GROUP BY T2.department_id", [
          "How many former employees does each department have?",
          "Number of people who left, per department.", "departures by department"]),
    T("manager_of",
      "SELECT T2.first_name, T2.last_name FROM employees AS T1 JOIN employees AS T2 ON T1.manager_id = "
      "T2.employee_id WHERE T1.email = {email}", [
          "Who is the manager of {email}?", "To whom does {email} report?", "name the boss of {email}"],
      {"email": "SELECT email FROM employees WHERE manager_id IS NOT NULL"}),
    T("count_active", "SELECT COUNT(*) FROM employees WHERE termination_date IS NULL", [
        "How many people currently work at the company?", "What is our total headcount right now?",
        "Number of active employees?"], split="dev"),
    T("projects_with_status", "SELECT name FROM projects WHERE status = {st}", [
        "Which projects are {st}?", "List the names of projects with status {st}.",
        "what projects are currently {st}"], {"st": ["active", "completed", "on hold"]}),
    T("leave_type_count", "SELECT COUNT(*) FROM leave_requests WHERE leave_type = {lt}", [
        "How many {lt} leave requests have been filed?", "Total number of {lt} leave requests?",
        "count all requests for {lt} leave"], {"lt": LEAVE_TYPE}),
    T("emails_hired_after", "SELECT email FROM employees WHERE hire_date > {d}", [
        "What are the email addresses of employees hired after {d}?",
        "Emails of everyone who started after {d}.", "give me emails of people hired later than {d}"],
      {"x": lambda rng, db: {"d": date_v(f"2024-{rng.randrange(1, 12):02d}-01", rng)}}),
    T("commission_sales_avg",
      f"SELECT T2.title, AVG(T1.commission_pct) FROM {J_EJ} WHERE T1.commission_pct IS NOT NULL "
      "GROUP BY T2.title", [
          "What is the average commission rate per job title, for titles that earn commission?",
          "Average commission percentage by title among commissioned staff."], split="dev"),
]


def main() -> None:
    rng = random.Random(SEED)
    tables = build_rows(rng)
    build_domain("hr", SCHEMA, tables, TEMPLATES, seed=SEED + 1)


if __name__ == "__main__":
    main()
