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
