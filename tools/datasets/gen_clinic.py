"""Generate datasets/clinic/: an outpatient clinic database.

Deterministic (fixed seed), Python 3.11 standard library only:
    python3 tools/datasets/gen_clinic.py
rewrites datasets/clinic/ byte-identically.
"""

from __future__ import annotations

import os
import random
import sys
from datetime import date, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common_b import MONTHS, Data, Tpl, build_domain, esc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 7202

SCHEMA = """
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
"""

SPECIALTIES = [
    ("Cardiology", 3), ("Dermatology", 2), ("Pediatrics", 1), ("Orthopedics", 2),
    ("Neurology", 4), ("General Practice", 1), ("Gynecology", 3), ("Psychiatry", 4),
    ("Ophthalmology", 2), ("Endocrinology", 3), ("Oncology", 5),
]
FEES = {"Cardiology": 180.0, "Dermatology": 140.0, "Pediatrics": 110.0, "Orthopedics": 160.0,
        "Neurology": 190.0, "General Practice": 90.0, "Gynecology": 150.0, "Psychiatry": 170.0,
        "Ophthalmology": 130.0, "Endocrinology": 160.0}
REASONS = {
    "Cardiology": ["chest pain", "palpitations", "hypertension follow-up", "shortness of breath", "ECG review"],
    "Dermatology": ["skin rash", "acne treatment", "mole check", "eczema flare-up", "psoriasis follow-up"],
    "Pediatrics": ["well-child visit", "fever", "ear pain", "vaccination", "persistent cough"],
    "Orthopedics": ["knee pain", "back pain", "shoulder injury", "fracture follow-up", "ankle sprain"],
    "Neurology": ["migraine", "dizziness", "numbness in hands", "seizure follow-up", "memory concerns"],
    "General Practice": ["annual checkup", "flu symptoms", "sore throat", "blood test review", "fatigue"],
    "Gynecology": ["annual exam", "prenatal visit", "pelvic pain", "contraception consult", "menstrual issues"],
    "Psychiatry": ["anxiety", "depression follow-up", "sleep problems", "medication review", "stress management"],
    "Ophthalmology": ["blurred vision", "eye exam", "glaucoma follow-up", "dry eyes", "eye pain"],
    "Endocrinology": ["diabetes follow-up", "thyroid check", "weight management", "hormone panel review",
                      "insulin adjustment"],
}
MEDS = [
    ("Lisinopril", "tablet", "10 mg", 0.35, "Cardiology"), ("Atorvastatin", "tablet", "20 mg", 0.42, "Cardiology"),
    ("Metoprolol", "tablet", "50 mg", 0.30, "Cardiology"), ("Amlodipine", "tablet", "5 mg", 0.25, "Cardiology"),
    ("Hydrocortisone", "cream", "1%", 6.50, "Dermatology"), ("Tretinoin", "cream", "0.05%", 38.00, "Dermatology"),
    ("Doxycycline", "capsule", "100 mg", 0.90, "Dermatology"),
    ("Amoxicillin", "capsule", "500 mg", 0.55, "Pediatrics"), ("Ibuprofen Junior", "syrup", "100 mg/5 ml", 7.80,
                                                              "Pediatrics"),
    ("Paracetamol Junior", "syrup", "120 mg/5 ml", 5.40, "Pediatrics"),
    ("Naproxen", "tablet", "500 mg", 0.48, "Orthopedics"), ("Diclofenac Gel", "cream", "1%", 12.90, "Orthopedics"),
    ("Cyclobenzaprine", "tablet", "10 mg", 0.60, "Orthopedics"),
    ("Sumatriptan", "tablet", "50 mg", 2.10, "Neurology"), ("Levetiracetam", "tablet", "500 mg", 1.20, "Neurology"),
    ("Gabapentin", "capsule", "300 mg", 0.70, "Neurology"),
    ("Azithromycin", "tablet", "250 mg", 1.85, "General Practice"),
    ("Ibuprofen", "tablet", "400 mg", 0.15, "General Practice"), ("Omeprazole", "capsule", "20 mg", 0.38,
                                                                  "General Practice"),
    ("Salbutamol", "inhaler", "100 mcg", 18.50, "General Practice"),
    ("Folic Acid", "tablet", "400 mcg", 0.08, "Gynecology"), ("Norethindrone", "tablet", "0.35 mg", 0.95, "Gynecology"),
    ("Sertraline", "tablet", "50 mg", 0.50, "Psychiatry"), ("Escitalopram", "tablet", "10 mg", 0.65, "Psychiatry"),
    ("Melatonin", "tablet", "3 mg", 0.20, "Psychiatry"), ("Bupropion", "tablet", "150 mg", 1.10, "Psychiatry"),
    ("Latanoprost", "syrup", "0.005% drops", 24.00, "Ophthalmology"),
    ("Artificial Tears", "syrup", "15 ml drops", 8.90, "Ophthalmology"),
    ("Metformin", "tablet", "500 mg", 0.18, "Endocrinology"), ("Insulin Glargine", "injection", "100 units/ml",
                                                               45.00, "Endocrinology"),
    ("Levothyroxine", "tablet", "50 mcg", 0.28, "Endocrinology"),
    ("Prednisone", "tablet", "10 mg", 0.22, None), ("Cetirizine", "tablet", "10 mg", 0.12, None),
    ("Warfarin", "tablet", "5 mg", 0.40, None), ("Fluticasone", "inhaler", "110 mcg", 52.00, None),
    ("Tamoxifen", "tablet", "20 mg", 1.50, "Oncology"), ("Ondansetron", "tablet", "8 mg", 2.40, "Oncology"),
    ("Filgrastim", "injection", "300 mcg", 310.00, "Oncology"),
]
CITIES = ["Portland", "Salem", "Eugene", "Beaverton", "Hillsboro", "Gresham", "Bend", "Medford",
          "Corvallis", "Tigard"]
INSURERS = ["BlueCross", "Aetna", "Cigna", "UnitedHealthcare", "Kaiser Permanente"]
FIRST_F = ["Emily", "Sarah", "Jessica", "Ashley", "Megan", "Laura", "Hannah", "Olivia", "Sophia", "Grace",
           "Chloe", "Natalie", "Rachel", "Anna", "Maya", "Lucia", "Aiko", "Priya", "Fatima", "Elena"]
FIRST_M = ["Michael", "David", "James", "Daniel", "Ryan", "Kevin", "Brian", "Jacob", "Ethan", "Nathan",
           "Lucas", "Samuel", "Owen", "Tyler", "Marcus", "Diego", "Hiroshi", "Arjun", "Omar", "Mateo"]
LAST = ["Anderson", "Bennett", "Carter", "Diaz", "Evans", "Foster", "Gomez", "Hughes", "Ito", "Jackson",
        "Khan", "Lopez", "Mitchell", "Nguyen", "Ortiz", "Patel", "Quinn", "Reyes", "Shapiro", "Turner",
        "Underwood", "Vasquez", "Walsh", "Xu", "Young", "Zimmerman", "O'Connor", "Campbell", "Brooks",
        "Sullivan", "Price", "Howard", "Ward", "Chen", "Park", "Morgan", "Russell", "Fisher", "Hayes", "Cole"]
NOTES = ["Symptoms improving, continue current plan.", "Ordered blood work.", "Referred for imaging.",
         "Follow-up in 3 months.", "Patient advised on diet and exercise.", "Prescription adjusted.",
         "No abnormalities found.", "Discussed treatment options.", "Patient reports mild side effects.",
         "Vitals within normal range."]
DOSAGES = ["once daily", "twice daily", "three times daily", "as needed", "every 8 hours", "at bedtime"]

SNAPSHOT = datetime(2024, 6, 20)


def build_data(rng: random.Random):
    specialties = [(i + 1, n, f) for i, (n, f) in enumerate(SPECIALTIES)]
    spec_id = {s[1]: s[0] for s in specialties}
    doctors = []
    docs_of: dict[str, list[int]] = {}
    used = set()
    for sname in FEES:
        n = 4 if sname in ("General Practice", "Pediatrics", "Cardiology") else 3
        seniors = []
        for k in range(n):
            while True:
                fn = rng.choice(FIRST_F + FIRST_M)
                ln = rng.choice(LAST)
                if ln not in used:
                    used.add(ln)
                    break
            senior = k == 0 or (k == 1 and n == 4)
            hire = date(rng.randint(2001, 2012) if senior else rng.randint(2014, 2023), rng.randint(1, 12),
                        rng.randint(1, 28))
            fee = FEES[sname] + rng.choice([-20.0, -10.0, 0.0, 0.0, 10.0, 25.0])
            did = len(doctors) + 1
            doctors.append((did, fn, ln, spec_id[sname], hire.isoformat(), fee,
                            None if senior else rng.choice(seniors)))
            if senior:
                seniors.append(did)
            docs_of.setdefault(sname, []).append(did)
    doc_spec = {d[0]: SPECIALTIES[d[3] - 1][0] for d in doctors}
    doc_fee = {d[0]: d[5] for d in doctors}
    doc_hire = {d[0]: d[4] for d in doctors}

    patients = []
    names = set()
    for pid in range(1, 541):
        while True:
            g = rng.choice("FM")
            fn = rng.choice(FIRST_F if g == "F" else FIRST_M)
            ln = rng.choice(LAST)
            if (fn, ln) not in names:
                names.add((fn, ln))
                break
        bd = date(rng.randint(1940, 2021), rng.randint(1, 12), rng.randint(1, 28))
        email = None if rng.random() < 0.15 else f"{fn.lower()}.{ln.lower().replace(chr(39), '')}{pid}@mail.com"
        ins = None if rng.random() < 0.2 else rng.choice(INSURERS)
        reg = date(2018, 1, 1) + timedelta(days=rng.randint(0, 5 * 365))
        patients.append((pid, fn, ln, bd.isoformat(), g, rng.choice(CITIES), email, ins, reg.isoformat()))
    pat_age = {p[0]: (date(2024, 1, 1) - date.fromisoformat(p[3])).days / 365.25 for p in patients}
    pat_ins = {p[0]: p[7] for p in patients}

    meds = [(i + 1, m[0], m[1], m[2], m[3]) for i, m in enumerate(MEDS)]
    meds_of: dict[str, list[int]] = {}
    for i, m in enumerate(MEDS):
        meds_of.setdefault(m[4], []).append(i + 1)
    med_price = {m[0]: m[4] for m in meds}

    appts, rx, invoices = [], [], []
    active = [p[0] for p in patients[:495]]  # the last 45 registered but never booked
    day0 = date(2023, 1, 2)
    slots: set[tuple[int, str]] = set()
    while len(appts) < 1500:
        pid = rng.choice(active)
        age = pat_age[pid]
        choices = [s for s in FEES if not (s == "Pediatrics" and age > 17) and not (s == "Gynecology" and
                                                                                     patients[pid - 1][4] == "M")]
        if age < 17:
            choices = ["Pediatrics"] * 5 + ["Dermatology", "Ophthalmology", "Orthopedics"]
        sname = rng.choice(choices)
        did = rng.choice(docs_of[sname])
        day = day0 + timedelta(days=rng.randint(0, 575))
        if day.weekday() >= 5 or day.isoformat() < doc_hire[did]:
            continue
        when = datetime(day.year, day.month, day.day, rng.randint(8, 16), rng.choice([0, 30]))
        key = (did, when.isoformat())
        if key in slots:
            continue
        slots.add(key)
        appts.append([pid, did, when, sname])
    appts.sort(key=lambda a: (a[2], a[1]))
    for i, (pid, did, when, sname) in enumerate(appts, 1):
        if when >= SNAPSHOT:
            status = "scheduled"
        else:
            r = rng.random()
            status = "completed" if r < 0.8 else ("cancelled" if r < 0.9 else "no-show")
        notes = None
        if status == "completed" and rng.random() < 0.65:
            notes = rng.choice(NOTES)
        elif status == "cancelled" and rng.random() < 0.3:
            notes = rng.choice(["Patient called to reschedule.", "Doctor unavailable.", "Cancelled online."])
        dur = rng.choice([15, 20, 30, 30, 30, 45, 60])
        appts[i - 1] = (i, pid, did, when.strftime("%Y-%m-%d %H:%M:%S"), dur, rng.choice(REASONS[sname]), status,
                        notes)
        if status != "completed":
            continue
        total = doc_fee[did]
        if rng.random() < 0.6:
            pool = meds_of[sname] + meds_of[None]
            for mid in rng.sample(pool, rng.choice([1, 1, 1, 2])):
                qty = rng.choice([1, 1, 2]) if MEDS[mid - 1][1] in ("cream", "syrup", "inhaler", "injection") \
                    else rng.choice([10, 14, 20, 28, 30, 60, 90])
                start = when.date()
                end = None if rng.random() < 0.2 else (start + timedelta(days=rng.choice([5, 7, 10, 14, 30, 60, 90])))
                rx.append((len(rx) + 1, i, mid, rng.choice(DOSAGES), qty, rng.choice([0, 0, 0, 1, 2, 3]),
                           start.isoformat(), end.isoformat() if end else None))
                total += qty * med_price[mid]
        total = round(total, 2)
        issued = when.date()
        if pat_ins[pid] is None:
            covered = 0.0
        else:
            covered = round(total * rng.choice([0.6, 0.7, 0.8, 0.8, 0.9, 1.0]), 2)
        paid = None
        if rng.random() < 0.9:
            pd_ = issued + timedelta(days=rng.randint(1, 75))
            if pd_ < SNAPSHOT.date():
                paid = pd_.isoformat()
        invoices.append((len(invoices) + 1, i, issued.isoformat(), total, covered, paid))

    return [
        ("specialties", ["specialty_id", "name", "floor"], specialties),
        ("doctors", ["doctor_id", "first_name", "last_name", "specialty_id", "hire_date", "consultation_fee",
                     "mentor_id"], doctors),
        ("patients", ["patient_id", "first_name", "last_name", "birth_date", "gender", "city", "email",
                      "insurance_provider", "registered_on"], patients),
        ("appointments", ["appointment_id", "patient_id", "doctor_id", "scheduled_at", "duration_minutes", "reason",
                          "status", "notes"], appts),
        ("medications", ["medication_id", "name", "form", "strength", "unit_price"], meds),
        ("prescriptions", ["prescription_id", "appointment_id", "medication_id", "dosage", "quantity", "refills",
                           "start_date", "end_date"], rx),
        ("invoices", ["invoice_id", "appointment_id", "issued_on", "amount", "insurance_covered", "paid_on"],
         invoices),
    ]


SPEC_PEOPLE = {"Cardiology": "cardiologist", "Dermatology": "dermatologist", "Pediatrics": "pediatrician",
               "Orthopedics": "orthopedist", "Neurology": "neurologist", "General Practice": "general practitioner",
               "Gynecology": "gynecologist", "Psychiatry": "psychiatrist", "Ophthalmology": "ophthalmologist",
               "Endocrinology": "endocrinologist", "Oncology": "oncologist"}


def art(noun: str) -> str:
    """Noun with its indefinite article."""
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def templates(d: Data) -> list[Tpl]:
    def spec(rng):
        s = d.pick(rng, "SELECT DISTINCT T2.name FROM doctors AS T1 JOIN specialties AS T2 ON T1.specialty_id = "
                        "T2.specialty_id ORDER BY 1")[0]
        return {"spec": s, "specp": SPEC_PEOPLE[s]}

    def two_specs(rng):
        a = spec(rng)
        while True:
            b = spec(rng)
            if b["spec"] != a["spec"]:
                break
        return {"s1": a["spec"], "p1": art(a["specp"]), "s2": b["spec"], "p2": art(b["specp"])}

    def city(rng):
        return {"city": rng.choice(CITIES)}

    def doctor(rng):
        fn, ln = d.pick(rng, "SELECT first_name, last_name FROM doctors ORDER BY doctor_id")
        return {"dfn": fn, "dln": esc(ln), "dln_q": ln}

    def patient(rng):
        fn, ln = d.pick(rng, "SELECT first_name, last_name FROM patients WHERE patient_id IN (SELECT patient_id "
                             "FROM appointments WHERE status = 'completed') GROUP BY first_name, last_name "
                             "HAVING COUNT(*) = 1 ORDER BY 1, 2")
        return {"fn": fn, "ln": esc(ln), "ln_q": ln}

    def birth_year(rng):
        return {"year": rng.randint(1945, 1965)}

    def insurer(rng):
        return {"ins": rng.choice(INSURERS)}

    def form(rng):
        return {"form": rng.choice(["tablet", "capsule", "syrup", "inhaler", "cream"])}

    def price(rng):
        return {"p": rng.choice([0.5, 1, 2, 10])}

    def letter(rng):
        return {"letter": rng.choice("BCHMPSW")}

    def top_n(rng):
        return {"n": rng.choice([3, 5, 10])}

    def a_day(rng):
        day = d.pick(rng, "SELECT DISTINCT date(scheduled_at) FROM appointments ORDER BY 1")[0]
        dd = date.fromisoformat(day)
        return {"date": day, "day_text": f"{MONTHS[dd.month - 1]} {dd.day}, {dd.year}"}

    def ym(rng):
        y = rng.choice([2023, 2024])
        m = rng.randint(1, 12 if y == 2023 else 6)
        return {"ym": f"{y}-{m:02d}", "month": MONTHS[m - 1], "year": y}

    def year(rng):
        return {"year": rng.choice([2023, 2024])}

    def med(rng):
        return {"med": d.pick(rng, "SELECT DISTINCT T2.name FROM prescriptions AS T1 JOIN medications AS T2 ON "
                                   "T1.medication_id = T2.medication_id ORDER BY 1")[0]}

    def age(rng):
        return {"age": rng.choice([60, 65, 70, 75, 80])}

    def hire_after(rng):
        return {"year": rng.randint(2012, 2020)}

    def days(rng):
        return {"n": rng.choice([30, 45, 60])}

    def reason_word(rng):
        return {"word": rng.choice(["pain", "follow-up", "check", "review", "exam", "eye", "skin"])}

    def having_n(rng):
        return {"n": rng.choice([5, 6, 7])}

    def window(rng):
        dd = date(2023, 2, 1) + timedelta(days=rng.randint(0, 480))
        return {"date": dd.isoformat(), "day_text": f"{MONTHS[dd.month - 1]} {dd.day}, {dd.year}"}

    def doctor_range(rng):
        dd = date(2023, 1, 1) + timedelta(days=rng.randint(0, 420))
        end = dd + timedelta(days=rng.choice([30, 60, 90]))
        return {**doctor(rng), "d1": dd.isoformat(), "d2": end.isoformat(),
                "t1": f"{MONTHS[dd.month - 1]} {dd.day}, {dd.year}", "t2": f"{MONTHS[end.month - 1]} {end.day}, {end.year}"}

    def city_n(rng):
        return {**city(rng), "n": rng.choice([3, 5])}

    j_doc_spec = "JOIN specialties AS T2 ON T1.specialty_id = T2.specialty_id"

    return [
        # ---------------- shared ----------------
        Tpl("specialty_list", "SELECT name, floor FROM specialties",
            ["List all specialties and the floor they are on.", "what departments does the clinic have, and which floor?",
             "Show every specialty with its floor."]),
        Tpl("doctors_in_spec",
            f"SELECT T1.first_name, T1.last_name FROM doctors AS T1 {j_doc_spec} WHERE T2.name = '{{spec}}'",
            ["Which doctors work in {spec}?", "list the {specp}s", "Who are our {specp}s?",
             "names of doctors in the {spec} department"], spec),
        Tpl("patients_in_city", "SELECT COUNT(*) FROM patients WHERE city = '{city}'",
            ["How many patients live in {city}?", "number of patients from {city}", "Count the patients based in {city}.",
             "how many of our patients are in {city}"], city),
        Tpl("patients_born_before", "SELECT first_name, last_name, birth_date FROM patients WHERE birth_date < '{year}-01-01'",
            ["Which patients were born before {year}?", "list patients with a birth date before {year}",
             "Show patients born earlier than 1 January {year} and their date of birth."], birth_year),
        Tpl("no_email_city", "SELECT first_name, last_name FROM patients WHERE city = '{city}' AND email IS NULL",
            ["Which patients in {city} have no email address on file?", "list {city} patients missing an email",
             "Show patients from {city} without an email.", "{city} patients we can't email (no address)"], city),
        Tpl("patients_insurer", "SELECT COUNT(*) FROM patients WHERE insurance_provider = '{ins}'",
            ["How many patients are insured by {ins}?", "number of patients with {ins} insurance",
             "Count the patients whose insurer is {ins}.", "how many {ins} members are our patients"], insurer),
        Tpl("meds_by_form", "SELECT name, strength, unit_price FROM medications WHERE form = '{form}'",
            ["Which medications come as a {form}? Show strength and price.", "list all {form} medications",
             "Show name, strength and unit price of every medication in {form} form."], form),
        Tpl("cheap_meds", "SELECT name, unit_price FROM medications WHERE unit_price < {p} ORDER BY unit_price",
            ["Which medications cost less than ${p} per unit, cheapest first?",
             "meds under {p} dollars a unit, sorted by price", "List medications with a unit price below {p}, from cheapest."],
            price),
        Tpl("patients_lastname", "SELECT first_name, last_name FROM patients WHERE last_name LIKE '{letter}%'",
            ["Which patients have a last name starting with {letter}?", "patients whose surname begins with {letter}",
             "List patients with last names beginning with the letter {letter}."], letter),
        Tpl("appt_status_counts", "SELECT status, COUNT(*) FROM appointments GROUP BY status",
            ["How many appointments are there per status?", "count appointments by status",
             "Break down appointments by their status.", "number of appointments for each status"]),
        Tpl("busiest_doctors",
            "SELECT T2.first_name, T2.last_name, COUNT(*) FROM appointments AS T1 JOIN doctors AS T2 ON "
            "T1.doctor_id = T2.doctor_id GROUP BY T1.doctor_id ORDER BY COUNT(*) DESC LIMIT {n}",
            ["Which {n} doctors have the most appointments?", "top {n} doctors by appointment count",
             "List the {n} busiest doctors and how many appointments they have."], top_n),
        Tpl("top_completed_doctor",
            "SELECT T2.first_name, T2.last_name FROM appointments AS T1 JOIN doctors AS T2 ON T1.doctor_id = "
            "T2.doctor_id WHERE T1.status = 'completed' GROUP BY T1.doctor_id ORDER BY COUNT(*) DESC LIMIT 1",
            ["Which doctor has completed the most appointments?", "doctor with the highest number of completed visits",
             "Who saw the most patients (completed appointments)?"]),
        Tpl("patient_history",
            "SELECT T1.scheduled_at, T3.first_name, T3.last_name, T1.status FROM appointments AS T1 JOIN patients AS T2 ON "
            "T1.patient_id = T2.patient_id JOIN doctors AS T3 ON T1.doctor_id = T3.doctor_id "
            "WHERE T2.first_name = '{fn}' AND T2.last_name = '{ln}' ORDER BY T1.scheduled_at",
            ["Show all appointments of {fn} {ln_q} in date order, with the doctor and status.",
             "appointment history of patient {fn} {ln_q} (date, doctor, status)",
             "List {fn} {ln_q}'s appointments chronologically with doctor name and status."], patient),
        Tpl("appts_on_day",
            "SELECT T1.scheduled_at, T2.first_name, T2.last_name FROM appointments AS T1 JOIN patients AS T2 ON "
            "T1.patient_id = T2.patient_id WHERE date(T1.scheduled_at) = '{date}'",
            ["Which patients had appointments on {day_text}, and at what time?", "who was booked in on {date}?",
             "List the appointment times and patient names for {day_text}."], a_day),
        Tpl("appts_in_month", "SELECT COUNT(*) FROM appointments WHERE strftime('%Y-%m', scheduled_at) = '{ym}'",
            ["How many appointments were there in {month} {year}?", "number of appointments in {ym}",
             "Count appointments scheduled during {month} {year}."], ym),
        Tpl("cancelled_for_doctor",
            "SELECT COUNT(*) FROM appointments AS T1 JOIN doctors AS T2 ON T1.doctor_id = T2.doctor_id "
            "WHERE T2.first_name = '{dfn}' AND T2.last_name = '{dln}' AND T1.status = 'cancelled'",
            ["How many of Dr. {dln_q}'s appointments were cancelled?",
             "number of cancelled appointments with Dr. {dfn} {dln_q}",
             "Count cancellations for doctor {dfn} {dln_q}."], doctor),
        Tpl("notes_missing_doctor",
            "SELECT COUNT(*) FROM appointments AS T1 JOIN doctors AS T2 ON T1.doctor_id = T2.doctor_id "
            "WHERE T2.first_name = '{dfn}' AND T2.last_name = '{dln}' AND T1.status = 'completed' AND T1.notes IS NULL",
            ["How many completed appointments of Dr. {dfn} {dln_q} have no notes?",
             "count Dr. {dln_q}'s completed visits without any notes",
             "For {dfn} {dln_q}, how many completed appointments lack notes?"], doctor),
        Tpl("notes_coalesce",
            "SELECT T1.scheduled_at, COALESCE(T1.notes, 'no notes') FROM appointments AS T1 JOIN patients AS T2 ON "
            "T1.patient_id = T2.patient_id WHERE T2.first_name = '{fn}' AND T2.last_name = '{ln}'",
            ["Show the notes of every appointment of {fn} {ln_q}, writing 'no notes' where there are none.",
             "{fn} {ln_q}'s appointments with notes ('no notes' if empty)",
             "List appointment time and notes for {fn} {ln_q}, using 'no notes' for missing notes."], patient),
        Tpl("avg_fee_spec",
            f"SELECT T2.name, AVG(T1.consultation_fee) FROM doctors AS T1 {j_doc_spec} GROUP BY T2.name",
            ["What is the average consultation fee in each specialty?", "avg doctor fee per specialty",
             "For every specialty, give the mean consultation fee."]),
        Tpl("spec_many_doctors",
            f"SELECT T2.name FROM doctors AS T1 {j_doc_spec} GROUP BY T2.name HAVING COUNT(*) >= {{n}}",
            ["Which specialties have at least {n} doctors?", "specialties with {n} or more doctors",
             "List departments staffed by {n} doctors or more."], lambda rng: {"n": rng.choice([3, 4])}),
        Tpl("invoiced_per_spec",
            "SELECT T4.name, SUM(T1.amount) FROM invoices AS T1 JOIN appointments AS T2 ON T1.appointment_id = "
            "T2.appointment_id JOIN doctors AS T3 ON T2.doctor_id = T3.doctor_id JOIN specialties AS T4 ON "
            "T3.specialty_id = T4.specialty_id GROUP BY T4.name ORDER BY SUM(T1.amount) DESC",
            ["How much has been invoiced per specialty, highest first?", "total invoice amount by specialty, descending",
             "Rank specialties by total amount billed."]),
        Tpl("unpaid_invoices_city",
            "SELECT T1.invoice_id, T1.amount, T3.first_name, T3.last_name FROM invoices AS T1 JOIN appointments AS T2 ON "
            "T1.appointment_id = T2.appointment_id JOIN patients AS T3 ON T2.patient_id = T3.patient_id "
            "WHERE T1.paid_on IS NULL AND T3.city = '{city}'",
            ["Which invoices of patients from {city} are still unpaid? Include the patient name and amount.",
             "unpaid invoices for {city} patients", "List outstanding invoices (not paid yet) of patients living in {city}."],
            city),
        Tpl("avg_days_to_pay", "SELECT AVG(julianday(paid_on) - julianday(issued_on)) FROM invoices "
                               "WHERE strftime('%Y', issued_on) = '{year}'",
            ["On average, how many days did it take to pay invoices issued in {year}?",
             "average days between issue and payment for {year} invoices",
             "Mean payment delay in days for invoices from {year}."], year),
        Tpl("out_of_pocket_patient",
            "SELECT SUM(T1.amount - T1.insurance_covered) FROM invoices AS T1 JOIN appointments AS T2 ON "
            "T1.appointment_id = T2.appointment_id JOIN patients AS T3 ON T2.patient_id = T3.patient_id "
            "WHERE T3.first_name = '{fn}' AND T3.last_name = '{ln}'",
            ["How much has {fn} {ln_q} had to pay out of pocket (invoice amount minus insurance)?",
             "total out-of-pocket cost for {fn} {ln_q}",
             "What is the sum of uncovered invoice amounts for patient {fn} {ln_q}?"], patient),
        Tpl("top_meds",
            "SELECT T2.name, COUNT(*) FROM prescriptions AS T1 JOIN medications AS T2 ON T1.medication_id = "
            "T2.medication_id GROUP BY T2.name ORDER BY COUNT(*) DESC LIMIT {n}",
            ["What are the {n} most prescribed medications?", "top {n} medications by number of prescriptions",
             "List the {n} medications prescribed most often, with counts."], top_n),
        Tpl("unprescribed_meds",
            "SELECT name FROM medications WHERE medication_id NOT IN (SELECT medication_id FROM prescriptions)",
            ["Which medications have never been prescribed?", "list meds with no prescriptions",
             "Show medications nobody has been prescribed."]),
        Tpl("no_appt_city",
            "SELECT first_name, last_name FROM patients WHERE city = '{city}' AND patient_id NOT IN "
            "(SELECT patient_id FROM appointments)",
            ["Which patients from {city} have never had an appointment?",
             "registered {city} patients with no appointments", "List {city} patients who never booked a visit."],
            city),
        Tpl("doctors_no_cancel",
            "SELECT first_name, last_name FROM doctors WHERE doctor_id NOT IN (SELECT doctor_id FROM appointments "
            "WHERE status = '{st}')",
            ["Which doctors have never had a {st} appointment?", "doctors with zero {st} appointments",
             "List doctors without any appointment marked {st}."],
            lambda rng: {"st": rng.choice(["no-show", "cancelled"])}),
        Tpl("seniors",
            "SELECT first_name, last_name, birth_date FROM patients WHERE birth_date <= date('2024-07-01', '-{age} years')",
            ["Which patients were at least {age} years old on July 1, 2024?",
             "patients aged {age} or over as of 2024-07-01", "List patients who had turned {age} by 1 July 2024."], age),
        Tpl("doctors_hired_after",
            f"SELECT T1.first_name, T1.last_name, T2.name FROM doctors AS T1 {j_doc_spec} WHERE T1.hire_date > '{{year}}-12-31'",
            ["Which doctors were hired after {year}, and in which specialty?",
             "doctors who joined after the end of {year} with their specialty",
             "Which doctors started after {year}? Show their specialty too."], hire_after),
        Tpl("doctors_no_mentor", "SELECT first_name, last_name FROM doctors WHERE mentor_id IS NULL",
            ["Which doctors do not have a mentor?", "list senior doctors (no mentor assigned)",
             "Show doctors whose mentor is not set."]),
        Tpl("open_rx_med",
            "SELECT COUNT(*) FROM prescriptions AS T1 JOIN medications AS T2 ON T1.medication_id = T2.medication_id "
            "WHERE T2.name = '{med}' AND T1.end_date IS NULL",
            ["How many {med} prescriptions have no end date?", "number of open-ended prescriptions for {med}",
             "Count long-term {med} prescriptions (end date missing)."], med),
        Tpl("union_specs",
            "SELECT DISTINCT T1.first_name, T1.last_name FROM patients AS T1 JOIN appointments AS T2 ON T1.patient_id = "
            "T2.patient_id JOIN doctors AS T3 ON T2.doctor_id = T3.doctor_id JOIN specialties AS T4 ON "
            "T3.specialty_id = T4.specialty_id WHERE T4.name = '{s1}' OR T4.name = '{s2}'",
            ["Which patients have had an appointment in {s1} or {s2}?",
             "patients who saw {p1} or {p2}", "List patients with visits to either {s1} or {s2}."], two_specs),
        Tpl("longer_than_avg",
            "SELECT appointment_id, reason, duration_minutes FROM appointments WHERE duration_minutes > "
            "(SELECT AVG(duration_minutes) FROM appointments) AND date(scheduled_at) = '{date}'",
            ["Which appointments on {day_text} were longer than the average appointment?",
             "appointments on {date} with above-average duration",
             "List the {day_text} appointments that ran longer than average."], a_day),
        Tpl("top_invoiced_patient",
            "SELECT T3.first_name, T3.last_name, SUM(T1.amount) FROM invoices AS T1 JOIN appointments AS T2 ON "
            "T1.appointment_id = T2.appointment_id JOIN patients AS T3 ON T2.patient_id = T3.patient_id "
            "GROUP BY T3.patient_id ORDER BY SUM(T1.amount) DESC LIMIT {n}",
            ["Which {n} patients have been invoiced the most in total?", "top {n} patients by invoiced amount",
             "List the {n} patients with the highest total invoices."], top_n),
        Tpl("monthly_revenue",
            "SELECT strftime('%m', issued_on) AS month, SUM(amount) FROM invoices WHERE strftime('%Y', issued_on) = "
            "'{year}' GROUP BY strftime('%m', issued_on) ORDER BY month",
            ["What was the invoiced total for each month of {year}?", "monthly invoice totals in {year}",
             "Sum of invoice amounts per month in {year}."], year),
        Tpl("reason_like",
            "SELECT COUNT(*) FROM appointments WHERE reason LIKE '%{word}%'",
            ["How many appointments had a reason mentioning '{word}'?", "count visits whose reason contains {word}",
             "number of appointments with {word} in the reason"], reason_word),
        Tpl("priciest_doctor_spec",
            f"SELECT T1.first_name, T1.last_name, T1.consultation_fee FROM doctors AS T1 {j_doc_spec} "
            "WHERE T2.name = '{spec}' ORDER BY T1.consultation_fee DESC LIMIT 1",
            ["Which {specp} charges the highest consultation fee?", "most expensive doctor in {spec} and their fee",
             "Who has the top consultation fee in {spec}?"], spec),
        Tpl("registered_in_year", "SELECT COUNT(*) FROM patients WHERE strftime('%Y', registered_on) = '{year}'",
            ["How many patients registered in {year}?", "number of new patient registrations in {year}",
             "Count patients who signed up during {year}."], lambda rng: {"year": rng.randint(2018, 2022)}),
        Tpl("max_qty_med",
            "SELECT MAX(T1.quantity) FROM prescriptions AS T1 JOIN medications AS T2 ON T1.medication_id = "
            "T2.medication_id WHERE T2.name = '{med}'",
            ["What is the largest quantity of {med} ever prescribed at once?", "max quantity on a {med} prescription",
             "Biggest single {med} prescription quantity?"], med),
        Tpl("many_visits",
            "SELECT T2.first_name, T2.last_name, COUNT(*) FROM appointments AS T1 JOIN patients AS T2 ON "
            "T1.patient_id = T2.patient_id GROUP BY T1.patient_id HAVING COUNT(*) > {n}",
            ["Which patients have more than {n} appointments?", "patients with over {n} appointments and their count",
             "List frequent patients: more than {n} appointments."], having_n),
        Tpl("fee_above_avg",
            "SELECT first_name, last_name, consultation_fee FROM doctors WHERE consultation_fee > "
            "(SELECT AVG(consultation_fee) FROM doctors)",
            ["Which doctors charge more than the average consultation fee?", "doctors with above-average fees",
             "List doctors whose fee exceeds the mean consultation fee."]),
        Tpl("doctor_count_left_join",
            "SELECT T1.name, COUNT(T2.doctor_id) FROM specialties AS T1 LEFT JOIN doctors AS T2 ON T1.specialty_id = "
            "T2.specialty_id GROUP BY T1.name",
            ["How many doctors does each specialty have, including specialties with none?",
             "doctor count per specialty (show zero too)", "For every department, how many doctors work there?"]),
        Tpl("uninsured_by_city",
            "SELECT city, COUNT(*) FROM patients WHERE insurance_provider IS NULL GROUP BY city",
            ["How many uninsured patients are there in each city?", "count of patients without insurance per city",
             "Number of patients with no insurance provider, by city."]),
        Tpl("patients_of_doctor",
            "SELECT DISTINCT T2.first_name, T2.last_name FROM appointments AS T1 JOIN patients AS T2 ON T1.patient_id = "
            "T2.patient_id JOIN doctors AS T3 ON T1.doctor_id = T3.doctor_id WHERE T3.first_name = '{dfn}' AND "
            "T3.last_name = '{dln}' AND T1.status = 'completed'",
            ["Which patients has Dr. {dfn} {dln_q} actually seen (completed visits)?",
             "patients seen by {dfn} {dln_q}", "List the distinct patients with a completed appointment with Dr. {dln_q}."],
            doctor),
        Tpl("no_show_count_city",
            "SELECT COUNT(*) FROM appointments AS T1 JOIN patients AS T2 ON T1.patient_id = T2.patient_id "
            "WHERE T1.status = 'no-show' AND T2.city = '{city}'",
            ["How many no-shows were there among patients from {city}?", "count missed appointments (no-show) for {city} patients",
             "Number of no-show appointments by people living in {city}."], city),
        Tpl("fully_covered_year",
            "SELECT COUNT(*) FROM invoices WHERE insurance_covered = amount AND strftime('%Y', issued_on) = '{year}'",
            ["How many invoices issued in {year} were fully covered by insurance?",
             "number of {year} invoices where insurance paid everything",
             "Count {year} invoices with the whole amount covered by the insurer."], year),
        # ---------------- dev-only ----------------
        Tpl("appts_by_weekday",
            "SELECT strftime('%w', scheduled_at) AS weekday, COUNT(*) FROM appointments GROUP BY weekday ORDER BY weekday",
            ["How many appointments fall on each day of the week (0 = Sunday)?",
             "appointment count per weekday number, Sunday being 0"], split="dev"),
        Tpl("refills_spec",
            "SELECT COUNT(*) FROM prescriptions AS T1 JOIN appointments AS T2 ON T1.appointment_id = T2.appointment_id "
            "JOIN doctors AS T3 ON T2.doctor_id = T3.doctor_id JOIN specialties AS T4 ON T3.specialty_id = "
            "T4.specialty_id WHERE T4.name = '{spec}' AND T1.refills > 0",
            ["How many prescriptions written in {spec} allow at least one refill?",
             "count {spec} prescriptions with refills", "Number of refillable prescriptions from {specp}s."],
            spec, split="dev"),
        Tpl("first_visit",
            "SELECT MIN(T1.scheduled_at) FROM appointments AS T1 JOIN patients AS T2 ON T1.patient_id = T2.patient_id "
            "WHERE T2.first_name = '{fn}' AND T2.last_name = '{ln}'",
            ["When was {fn} {ln_q}'s first appointment?", "earliest appointment date for {fn} {ln_q}",
             "What is the first time {fn} {ln_q} had an appointment booked?"], patient, split="dev"),
        Tpl("mentor_pairs",
            "SELECT T1.first_name, T1.last_name, T2.first_name, T2.last_name FROM doctors AS T1 JOIN doctors AS T2 ON "
            "T1.mentor_id = T2.doctor_id",
            ["List every doctor who has a mentor, together with the mentor's name.", "doctor and mentor pairs",
             "Who mentors whom among the doctors?"], split="dev"),
        Tpl("avg_duration_spec",
            "SELECT AVG(T1.duration_minutes) FROM appointments AS T1 JOIN doctors AS T2 ON T1.doctor_id = T2.doctor_id "
            "JOIN specialties AS T3 ON T2.specialty_id = T3.specialty_id WHERE T3.name = '{spec}'",
            ["How long is a {spec} appointment on average, in minutes?", "average {spec} appointment duration",
             "Mean length in minutes of appointments with {specp}s."], spec, split="dev"),
        # ---------------- test-only ----------------
        Tpl("both_specs",
            "SELECT T1.first_name, T1.last_name FROM patients AS T1 JOIN appointments AS T2 ON T1.patient_id = "
            "T2.patient_id JOIN doctors AS T3 ON T2.doctor_id = T3.doctor_id WHERE T3.specialty_id = (SELECT "
            "specialty_id FROM specialties WHERE name = '{s1}') INTERSECT SELECT T1.first_name, T1.last_name FROM "
            "patients AS T1 JOIN appointments AS T2 ON T1.patient_id = T2.patient_id JOIN doctors AS T3 ON "
            "T2.doctor_id = T3.doctor_id WHERE T3.specialty_id = (SELECT specialty_id FROM specialties WHERE name = '{s2}')",
            ["Which patients have had appointments in both {s1} and {s2}?",
             "patients who have seen {p1} and also {p2}",
             "List patients with visits to {s1} as well as to {s2}."], two_specs, split="test"),
        Tpl("booked_never_completed_city",
            "SELECT T1.first_name, T1.last_name FROM patients AS T1 JOIN appointments AS T2 ON T1.patient_id = "
            "T2.patient_id WHERE T1.city = '{city}' EXCEPT SELECT T1.first_name, T1.last_name FROM patients AS T1 "
            "JOIN appointments AS T2 ON T1.patient_id = T2.patient_id WHERE T2.status = 'completed'",
            ["Which {city} patients have booked appointments but never completed one?",
             "patients in {city} with appointments, none of them completed",
             "List patients from {city} who have appointments yet no completed visit."], city, split="test",
            allow_empty=True),
        Tpl("doctors_noshow_month",
            "SELECT T1.first_name, T1.last_name FROM doctors AS T1 WHERE EXISTS (SELECT 1 FROM appointments AS T2 "
            "WHERE T2.doctor_id = T1.doctor_id AND T2.status = 'no-show' AND strftime('%Y-%m', T2.scheduled_at) = '{ym}')",
            ["Which doctors had at least one no-show in {month} {year}?",
             "doctors with a no-show appointment during {ym}",
             "List the doctors who had any patient not show up in {month} {year}."], ym, split="test"),
        Tpl("late_payments",
            "SELECT invoice_id, issued_on, paid_on FROM invoices WHERE julianday(paid_on) - julianday(issued_on) > {n}",
            ["Which invoices were paid more than {n} days after they were issued?",
             "invoices paid more than {n} days after the issue date", "List invoices with a payment delay above {n} days."],
            days, split="test"),
        Tpl("patients_on_med",
            "SELECT DISTINCT T3.first_name, T3.last_name FROM prescriptions AS T1 JOIN appointments AS T2 ON "
            "T1.appointment_id = T2.appointment_id JOIN patients AS T3 ON T2.patient_id = T3.patient_id JOIN "
            "medications AS T4 ON T1.medication_id = T4.medication_id WHERE T4.name = '{med}'",
            ["Which patients have been prescribed {med}?", "who got a {med} prescription?",
             "List the distinct patients with a prescription for {med}."], med, split="test"),
        Tpl("rx_length_per_med",
            "SELECT T2.name, AVG(julianday(T1.end_date) - julianday(T1.start_date)) FROM prescriptions AS T1 JOIN "
            "medications AS T2 ON T1.medication_id = T2.medication_id WHERE T2.form = '{form}' AND T1.end_date IS NOT NULL "
            "GROUP BY T2.name",
            ["For each {form} medication, what is the average prescription length in days (fixed-term prescriptions only)?",
             "avg days between start and end of prescriptions, per {form} medication",
             "How many days do prescriptions of each {form} drug last on average, ignoring open-ended ones?"],
            form, split="test"),
        Tpl("cities_of_doctor",
            "SELECT DISTINCT T2.city FROM appointments AS T1 JOIN patients AS T2 ON T1.patient_id = T2.patient_id "
            "JOIN doctors AS T3 ON T1.doctor_id = T3.doctor_id WHERE T3.first_name = '{dfn}' AND T3.last_name = '{dln}'",
            ["From which cities do Dr. {dfn} {dln_q}'s patients come?",
             "distinct home cities of patients with appointments with {dfn} {dln_q}",
             "What cities do the patients of doctor {dln_q} live in?"], doctor, split="test"),
        Tpl("gender_split_spec",
            "SELECT T1.gender, COUNT(DISTINCT T1.patient_id) FROM patients AS T1 JOIN appointments AS T2 ON "
            "T1.patient_id = T2.patient_id JOIN doctors AS T3 ON T2.doctor_id = T3.doctor_id JOIN specialties AS T4 ON "
            "T3.specialty_id = T4.specialty_id WHERE T4.name = '{spec}' GROUP BY T1.gender",
            ["How many distinct female and male patients has {spec} seen?",
             "gender breakdown of {spec} patients (distinct patients)",
             "Number of different patients per gender with an appointment in {spec}."], spec, split="test"),
        Tpl("rx_cost_patient",
            "SELECT T4.name, T1.quantity * T4.unit_price FROM prescriptions AS T1 JOIN appointments AS T2 ON "
            "T1.appointment_id = T2.appointment_id JOIN patients AS T3 ON T2.patient_id = T3.patient_id JOIN "
            "medications AS T4 ON T1.medication_id = T4.medication_id WHERE T3.first_name = '{fn}' AND T3.last_name = '{ln}'",
            ["What did each medication prescribed to {fn} {ln_q} cost (quantity times unit price)?",
             "cost of every prescription of {fn} {ln_q}", "For {fn} {ln_q}, list each prescribed medication with its cost."],
            patient, split="test"),
        Tpl("days_since_last_visit",
            "SELECT julianday('2024-07-01') - julianday(date(MAX(T1.scheduled_at))) FROM appointments AS T1 JOIN patients AS T2 "
            "ON T1.patient_id = T2.patient_id WHERE T2.first_name = '{fn}' AND T2.last_name = '{ln}' AND "
            "T1.status = 'completed'",
            ["How many days before July 1, 2024 was {fn} {ln_q}'s last completed visit?",
             "days between {fn} {ln_q}'s latest completed appointment and 2024-07-01",
             "As of 1 July 2024, how long ago (in days) did {fn} {ln_q} last see a doctor?"], patient, split="test"),
        Tpl("spec_fee_above_avg",
            f"SELECT T1.first_name, T1.last_name FROM doctors AS T1 {j_doc_spec} WHERE T2.name = '{{spec}}' AND "
            "T1.consultation_fee > (SELECT AVG(consultation_fee) FROM doctors)",
            ["Which {specp}s charge more than the clinic-wide average fee?",
             "{spec} doctors with a fee above the overall average",
             "List {spec} doctors whose consultation fee is higher than the average of all doctors."],
            spec, split="test", allow_empty=True),
        Tpl("noshow_rate_spec",
            "SELECT T3.name, SUM(CASE WHEN T1.status = 'no-show' THEN 1 ELSE 0 END) * 1.0 / COUNT(*) FROM appointments "
            "AS T1 JOIN doctors AS T2 ON T1.doctor_id = T2.doctor_id JOIN specialties AS T3 ON T2.specialty_id = "
            "T3.specialty_id WHERE strftime('%Y', T1.scheduled_at) = '{year}' GROUP BY T3.name",
            ["What share of appointments were no-shows in each specialty in {year}?",
             "no-show rate per specialty for {year}", "For {year}, give every specialty's fraction of no-show appointments."],
            year, split="test"),
        Tpl("rx_ending_soon",
            "SELECT T2.name, T1.end_date FROM prescriptions AS T1 JOIN medications AS T2 ON T1.medication_id = "
            "T2.medication_id WHERE T1.end_date >= '{date}' AND T1.end_date <= date('{date}', '+30 days')",
            ["Which prescriptions end within 30 days from {day_text} (inclusive)?",
             "prescriptions with an end date between {date} and 30 days later",
             "List medications whose prescription ends in the 30 days after {day_text}, with the end date."],
            window, split="test"),
        Tpl("doctor_range",
            "SELECT T1.scheduled_at, T1.reason FROM appointments AS T1 JOIN doctors AS T2 ON T1.doctor_id = T2.doctor_id "
            "WHERE T2.first_name = '{dfn}' AND T2.last_name = '{dln}' AND date(T1.scheduled_at) BETWEEN '{d1}' AND '{d2}'",
            ["What appointments did Dr. {dfn} {dln_q} have between {t1} and {t2}?",
             "Dr. {dln_q}'s appointments from {d1} to {d2}, with the reason",
             "List times and reasons of {dfn} {dln_q}'s appointments between {t1} and {t2}."],
            doctor_range, split="test"),
        Tpl("uninsured_top_city",
            "SELECT T2.first_name, T2.last_name, SUM(T1.amount) FROM invoices AS T1 JOIN appointments AS T3 ON "
            "T1.appointment_id = T3.appointment_id JOIN patients AS T2 ON T3.patient_id = T2.patient_id "
            "WHERE T2.insurance_provider IS NULL AND T2.city = '{city}' GROUP BY T2.patient_id ORDER BY SUM(T1.amount) "
            "DESC LIMIT {n}",
            ["Which {n} uninsured patients from {city} have the largest invoice totals?",
             "top {n} patients without insurance in {city} by amount invoiced",
             "Among uninsured {city} patients, list the {n} with the highest total invoiced."],
            city_n, split="test"),
    ]


def main() -> None:
    rng = random.Random(SEED)
    tables = build_data(rng)
    build_domain("clinic", ROOT, SCHEMA, tables, templates, SEED)


if __name__ == "__main__":
    main()
