-- Outpatient clinic. Money is REAL in US dollars with 2 decimals.
-- Dates are TEXT 'YYYY-MM-DD'; datetimes are TEXT 'YYYY-MM-DD HH:MM:SS'. Data as of 2024-06-20.
CREATE TABLE specialties (
    specialty_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    floor INTEGER NOT NULL
);

-- mentor_id is the senior doctor who mentors this doctor (NULL for senior doctors).
CREATE TABLE doctors (
    doctor_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    specialty_id INTEGER NOT NULL REFERENCES specialties (specialty_id),
    hire_date TEXT NOT NULL,
    consultation_fee REAL NOT NULL,
    mentor_id INTEGER REFERENCES doctors (doctor_id)
);

-- gender is 'F' or 'M'; email and insurance_provider are NULL when unknown / uninsured.
CREATE TABLE patients (
    patient_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    gender TEXT NOT NULL,
    city TEXT NOT NULL,
    email TEXT,
    insurance_provider TEXT,
    registered_on TEXT NOT NULL
);

-- status is 'completed', 'cancelled', 'no-show' or 'scheduled' (future).
-- notes is NULL when the doctor wrote none.
CREATE TABLE appointments (
    appointment_id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients (patient_id),
    doctor_id INTEGER NOT NULL REFERENCES doctors (doctor_id),
    scheduled_at TEXT NOT NULL,
    duration_minutes INTEGER NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    notes TEXT
);

-- form is 'tablet', 'capsule', 'syrup', 'inhaler', 'cream' or 'injection'; unit_price in US dollars.
CREATE TABLE medications (
    medication_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    form TEXT NOT NULL,
    strength TEXT NOT NULL,
    unit_price REAL NOT NULL
);

-- Medications prescribed at an appointment (links appointments and medications).
-- end_date is NULL for open-ended (long-term) prescriptions.
CREATE TABLE prescriptions (
    prescription_id INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL REFERENCES appointments (appointment_id),
    medication_id INTEGER NOT NULL REFERENCES medications (medication_id),
    dosage TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    refills INTEGER NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT
);

-- One invoice per completed appointment: amount = doctor's consultation fee + sum of
-- quantity * unit_price of the appointment's prescriptions. paid_on is NULL while unpaid.
CREATE TABLE invoices (
    invoice_id INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL REFERENCES appointments (appointment_id),
    issued_on TEXT NOT NULL,
    amount REAL NOT NULL,
    insurance_covered REAL NOT NULL,
    paid_on TEXT
);
