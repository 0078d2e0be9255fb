"""Generate datasets/flights/: an airline operations and booking database.

Deterministic (fixed seed), Python 3.11 standard library only:
    python3 tools/datasets/gen_flights.py
rewrites datasets/flights/ byte-identically.
"""

from __future__ import annotations

import os
import random
import sys
from datetime import date, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common_b import MONTHS, Data, Tpl, build_domain, country_phrasing, country_slots, esc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 7101

SCHEMA = """
-- Airline operations and bookings. Money is REAL in US dollars with 2 decimals.
-- Dates are TEXT 'YYYY-MM-DD'; datetimes are TEXT 'YYYY-MM-DD HH:MM:SS' (local time).
CREATE TABLE airlines (
    airline_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    iata_code TEXT NOT NULL,
    country TEXT NOT NULL,
    founded_year INTEGER NOT NULL
);

CREATE TABLE airports (
    airport_id INTEGER PRIMARY KEY,
    iata_code TEXT NOT NULL,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    country TEXT NOT NULL,
    elevation_ft INTEGER
);

-- retired_date is NULL while the aircraft is in service.
CREATE TABLE aircraft (
    aircraft_id INTEGER PRIMARY KEY,
    airline_id INTEGER NOT NULL REFERENCES airlines (airline_id),
    registration TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    seat_capacity INTEGER NOT NULL,
    in_service_date TEXT NOT NULL,
    retired_date TEXT
);

-- status is 'landed', 'cancelled' or 'scheduled' (not flown yet, data as of 2024-06-20).
-- actual_departure / actual_arrival are NULL for cancelled and scheduled flights.
-- base_fare is the economy fare in US dollars.
CREATE TABLE flights (
    flight_id INTEGER PRIMARY KEY,
    airline_id INTEGER NOT NULL REFERENCES airlines (airline_id),
    flight_number TEXT NOT NULL,
    origin_airport_id INTEGER NOT NULL REFERENCES airports (airport_id),
    destination_airport_id INTEGER NOT NULL REFERENCES airports (airport_id),
    aircraft_id INTEGER NOT NULL REFERENCES aircraft (aircraft_id),
    scheduled_departure TEXT NOT NULL,
    scheduled_arrival TEXT NOT NULL,
    actual_departure TEXT,
    actual_arrival TEXT,
    status TEXT NOT NULL,
    base_fare REAL NOT NULL
);

-- frequent_flyer_number is NULL for passengers outside the loyalty programme.
CREATE TABLE passengers (
    passenger_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    nationality TEXT NOT NULL,
    frequent_flyer_number TEXT
);

-- A booking is made by one passenger (the contact) and holds one or more tickets.
-- total_amount (US dollars) equals the sum of its tickets' prices; promo_code is NULL when none was used.
-- status is 'confirmed' or 'cancelled'.
CREATE TABLE bookings (
    booking_id INTEGER PRIMARY KEY,
    booking_reference TEXT NOT NULL,
    contact_passenger_id INTEGER NOT NULL REFERENCES passengers (passenger_id),
    booked_at TEXT NOT NULL,
    status TEXT NOT NULL,
    promo_code TEXT,
    total_amount REAL NOT NULL
);

-- One ticket = one passenger on one flight (links passengers and flights).
-- cabin_class is 'economy', 'premium economy', 'business' or 'first'; seat_number is NULL until check-in.
CREATE TABLE tickets (
    ticket_id INTEGER PRIMARY KEY,
    booking_id INTEGER NOT NULL REFERENCES bookings (booking_id),
    flight_id INTEGER NOT NULL REFERENCES flights (flight_id),
    passenger_id INTEGER NOT NULL REFERENCES passengers (passenger_id),
    cabin_class TEXT NOT NULL,
    seat_number TEXT,
    price REAL NOT NULL,
    checked_bags INTEGER NOT NULL
);

-- role is 'captain', 'first officer', 'purser' or 'flight attendant'.
-- supervisor_id points to the crew member's supervisor (NULL for captains).
CREATE TABLE crew_members (
    crew_id INTEGER PRIMARY KEY,
    airline_id INTEGER NOT NULL REFERENCES airlines (airline_id),
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    role TEXT NOT NULL,
    hire_date TEXT NOT NULL,
    supervisor_id INTEGER REFERENCES crew_members (crew_id)
);

-- Which crew members work which flight (links flights and crew_members).
CREATE TABLE flight_crew (
    flight_id INTEGER NOT NULL REFERENCES flights (flight_id),
    crew_id INTEGER NOT NULL REFERENCES crew_members (crew_id),
    PRIMARY KEY (flight_id, crew_id)
);
"""

AIRLINES = [
    ("Northwind Airways", "NW", "United States", 1986),
    ("Aurora Air", "AU", "Canada", 1995),
    ("Iberia Sol", "IS", "Spain", 1972),
    ("Alpine Wings", "AW", "Switzerland", 2003),
    ("Pacific Crest Airlines", "PC", "United States", 1978),
    ("Nordic Sky", "NS", "Norway", 2008),
    ("Lusitania Air", "LA", "Portugal", 1964),
    ("Tasman Jet", "TJ", "Australia", 2011),
]

AIRPORTS = [
    ("JFK", "John F. Kennedy International Airport", "New York", "United States", 13),
    ("LAX", "Los Angeles International Airport", "Los Angeles", "United States", 128),
    ("ORD", "O'Hare International Airport", "Chicago", "United States", 672),
    ("SEA", "Seattle-Tacoma International Airport", "Seattle", "United States", 433),
    ("BOS", "Logan International Airport", "Boston", "United States", 20),
    ("DEN", "Denver International Airport", "Denver", "United States", 5434),
    ("YYZ", "Toronto Pearson International Airport", "Toronto", "Canada", 569),
    ("YVR", "Vancouver International Airport", "Vancouver", "Canada", 14),
    ("YUL", "Montreal-Trudeau International Airport", "Montreal", "Canada", 118),
    ("MAD", "Adolfo Suarez Madrid-Barajas Airport", "Madrid", "Spain", 2001),
    ("BCN", "Josep Tarradellas Barcelona-El Prat Airport", "Barcelona", "Spain", 14),
    ("ZRH", "Zurich Airport", "Zurich", "Switzerland", 1416),
    ("GVA", "Geneva Airport", "Geneva", "Switzerland", 1411),
    ("OSL", "Oslo Gardermoen Airport", "Oslo", "Norway", 681),
    ("BGO", "Bergen Flesland Airport", "Bergen", "Norway", 170),
    ("LIS", "Humberto Delgado Airport", "Lisbon", "Portugal", 374),
    ("OPO", "Francisco Sa Carneiro Airport", "Porto", "Portugal", 228),
    ("SYD", "Sydney Kingsford Smith Airport", "Sydney", "Australia", 21),
    ("MEL", "Melbourne Airport", "Melbourne", "Australia", 434),
    ("AKL", "Auckland Airport", "Auckland", "New Zealand", 23),
    ("LHR", "Heathrow Airport", "London", "United Kingdom", 83),
    ("CDG", "Charles de Gaulle Airport", "Paris", "France", 392),
    ("FRA", "Frankfurt Airport", "Frankfurt", "Germany", 364),
    ("AMS", "Amsterdam Airport Schiphol", "Amsterdam", "Netherlands", -11),
    ("HNL", "Daniel K. Inouye International Airport", "Honolulu", "United States", 13),
    ("PDX", "Portland International Airport", "Portland", "United States", 31),
]

# airline index -> routes (origin code, destination code, minutes, economy fare)
ROUTES = {
    0: [("JFK", "LAX", 360, 289.0), ("JFK", "ORD", 165, 159.0), ("BOS", "DEN", 275, 219.0),
        ("ORD", "SEA", 265, 199.0), ("JFK", "LHR", 420, 549.0), ("BOS", "JFK", 75, 99.0)],
    1: [("YYZ", "YVR", 300, 259.0), ("YUL", "YYZ", 80, 119.0), ("YVR", "SEA", 55, 89.0),
        ("YYZ", "CDG", 435, 619.0), ("YUL", "BOS", 90, 139.0)],
    2: [("MAD", "BCN", 75, 79.0), ("MAD", "LIS", 80, 89.0), ("BCN", "CDG", 115, 109.0),
        ("MAD", "JFK", 500, 579.0), ("BCN", "AMS", 140, 129.0)],
    3: [("ZRH", "GVA", 55, 99.0), ("ZRH", "FRA", 65, 119.0), ("GVA", "LHR", 105, 149.0),
        ("ZRH", "AMS", 95, 139.0), ("GVA", "BCN", 100, 119.0)],
    4: [("LAX", "SEA", 170, 149.0), ("LAX", "HNL", 345, 329.0), ("SEA", "DEN", 160, 139.0),
        ("LAX", "DEN", 150, 129.0), ("SEA", "HNL", 375, 349.0), ("LAX", "SYD", 870, 1099.0)],
    5: [("OSL", "BGO", 55, 69.0), ("OSL", "AMS", 125, 119.0), ("BGO", "LHR", 125, 129.0),
        ("OSL", "FRA", 130, 129.0)],
    6: [("LIS", "OPO", 55, 59.0), ("LIS", "MAD", 75, 79.0), ("OPO", "CDG", 135, 119.0),
        ("LIS", "LHR", 160, 139.0), ("LIS", "BOS", 440, 499.0)],
    7: [("SYD", "MEL", 90, 109.0), ("SYD", "AKL", 185, 249.0), ("MEL", "AKL", 200, 259.0)],
}

FLEET = [
    ("Airbus", "A320neo", 180), ("Airbus", "A321neo", 220), ("Airbus", "A330-300", 290),
    ("Boeing", "737-800", 175), ("Boeing", "737 MAX 8", 178), ("Boeing", "787-9", 296),
    ("Embraer", "E195-E2", 132), ("Airbus", "A220-300", 140), ("Boeing", "777-300ER", 350),
]
LONG_HAUL = {"A330-300", "787-9", "777-300ER"}

FIRST = ["James", "Maria", "Liam", "Sofia", "Noah", "Emma", "Lucas", "Olivia", "Mateo",
         "Ava", "Ethan", "Chloe", "Hugo", "Ingrid", "Lars", "Camila", "Diego", "Nora",
         "Henrik", "Leonor", "Tomas", "Amelia", "Oscar", "Isla", "Jack", "Grace", "Rafael",
         "Ines", "Pedro", "Astrid", "Felix", "Clara", "Daniel", "Mia", "Samuel", "Elena",
         "Marco", "Julia", "Victor", "Hannah", "Aiden", "Zoe", "Kenji", "Priya", "Omar",
         "Fatima", "Wei", "Aisha", "Nikolai", "Freya"]
LAST = ["Smith", "Johnson", "Garcia", "Martinez", "Brown", "Lee", "Wilson", "Anderson",
        "Taylor", "Thomas", "Moore", "Martin", "Silva", "Santos", "Ferreira", "Costa",
        "Hansen", "Johansen", "Larsen", "Berg", "Muller", "Schneider", "Fischer", "Weber",
        "Tremblay", "Roy", "Gagnon", "Fernandez", "Lopez", "Sanchez", "Nguyen", "Kim",
        "Patel", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green", "O'Brien",
        "Murphy", "Kelly", "Dubois", "Moreau", "Rossi", "Bianchi", "Novak", "Kowalski",
        "Jensen"]
NATIONALITIES = ["United States", "Canada", "Spain", "Switzerland", "Norway", "Portugal",
                 "Australia", "United Kingdom", "France", "Germany", "Netherlands",
                 "New Zealand", "Japan", "India", "Brazil"]
DEMONYM = {"United States": "American", "Canada": "Canadian", "Spain": "Spanish", "Switzerland": "Swiss",
           "Norway": "Norwegian", "Portugal": "Portuguese", "Australia": "Australian",
           "United Kingdom": "British", "France": "French", "Germany": "German", "Netherlands": "Dutch",
           "New Zealand": "New Zealand", "Japan": "Japanese", "India": "Indian", "Brazil": "Brazilian"}
PROMOS = ["SPRING24", "WELCOME10", "FLYMORE", "SUMMERSALE", "STUDENT15"]
CLASS_MULT = [("economy", 1.0, 70), ("premium economy", 1.6, 14), ("business", 3.2, 12),
              ("first", 5.5, 4)]

DATA_START = date(2024, 1, 1)
SNAPSHOT = datetime(2024, 6, 20, 0, 0, 0)


def dt(x: datetime) -> str:
    return x.strftime("%Y-%m-%d %H:%M:%S")


def build_data(rng: random.Random):
    airlines = [(i + 1, *a) for i, a in enumerate(AIRLINES)]
    airports = [(i + 1, *a) for i, a in enumerate(AIRPORTS)]
    ap_id = {a[1]: a[0] for a in airports}

    aircraft = []
    fleet_of: dict[int, list[tuple[int, int, bool]]] = {}
    reg_prefix = ["N", "C-", "EC-", "HB-", "N", "LN-", "CS-", "VH-"]
    for al in range(8):
        fleet_of[al + 1] = []
        n = 5 + (al % 3)
        models = rng.sample(FLEET, 4)
        if al in (0, 1, 2, 4, 6):
            models.append(next(f for f in FLEET if f[1] == "787-9"))
        for k in range(n):
            man, model, seats = models[k % len(models)]
            seats += rng.choice([-12, -6, 0, 0, 6])
            in_service = date(rng.randint(2006, 2022), rng.randint(1, 12), rng.randint(1, 28))
            retired = None
            if k == n - 1 and al % 2 == 0:
                retired = (date(2023, rng.randint(1, 12), rng.randint(1, 28))).isoformat()
            if reg_prefix[al] == "N":
                reg = f"N{rng.randint(100, 999)}{AIRLINES[al][1]}"
            else:
                reg = reg_prefix[al] + "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(3))
            aid = len(aircraft) + 1
            aircraft.append((aid, al + 1, reg, man, model, seats, in_service.isoformat(), retired))
            if retired is None:
                fleet_of[al + 1].append((aid, seats, model in LONG_HAUL))

    flights = []
    route_no = {}
    for al, routes in ROUTES.items():
        for r_i, r in enumerate(routes):
            route_no[(al, r[0], r[1])] = 100 + 100 * (al % 4) + 2 * r_i + 1
            route_no[(al, r[1], r[0])] = 100 + 100 * (al % 4) + 2 * r_i + 2
    all_routes = []
    for al, routes in ROUTES.items():
        for (o, d_, mins, fare) in routes:
            all_routes.append((al, o, d_, mins, fare))
            all_routes.append((al, d_, o, mins + rng.choice([-10, 0, 10]), fare))
    day = DATA_START
    while day <= date(2024, 6, 30):
        todays = rng.sample(all_routes, 4)
        for (al, o, d_, mins, fare) in todays:
            fleet = fleet_of[al + 1]
            long_ok = [f for f in fleet if f[2]] if mins > 300 else [f for f in fleet if not f[2]]
            ac = rng.choice(long_ok or fleet)
            dep = datetime(day.year, day.month, day.day, rng.choice([6, 7, 8, 9, 11, 13, 15, 17, 19, 21]),
                           rng.choice([0, 15, 30, 45]))
            arr = dep + timedelta(minutes=mins)
            fare_now = round(fare * rng.choice([0.85, 0.9, 1.0, 1.0, 1.1, 1.2, 1.35]), 2)
            if dep >= SNAPSHOT:
                status, adep, aarr = "scheduled", None, None
            elif rng.random() < 0.04:
                status, adep, aarr = "cancelled", None, None
            else:
                delay = rng.choice([-5, 0, 0, 0, 5, 10, 15, 25, 40, 75, 130])
                status = "landed"
                adep = dep + timedelta(minutes=max(delay, -3))
                aarr = arr + timedelta(minutes=delay + rng.choice([-15, -5, 0, 5, 10]))
                adep, aarr = dt(adep), dt(aarr)
            fno = f"{AIRLINES[al][1]}{route_no[(al, o, d_)]}"
            flights.append([len(flights) + 1, al + 1, fno, ap_id[o], ap_id[d_], ac[0], dt(dep), dt(arr),
                            adep, aarr, status, fare_now])
        day += timedelta(days=1)

    passengers = []
    seen_names = set()
    while len(passengers) < 420:
        fn, ln = rng.choice(FIRST), rng.choice(LAST)
        if (fn, ln) in seen_names:
            continue
        seen_names.add((fn, ln))
        pid = len(passengers) + 1
        email = f"{fn.lower()}.{ln.lower().replace(chr(39), '')}{rng.randint(1, 99)}@example.com"
        bd = date(rng.randint(1948, 2006), rng.randint(1, 12), rng.randint(1, 28)).isoformat()
        nat = rng.choice(NATIONALITIES[:8] * 3 + NATIONALITIES[8:])
        ff = f"FF{rng.randint(100000, 999999)}" if rng.random() < 0.45 else None
        passengers.append((pid, fn, ln, email, bd, nat, ff))

    # bookings and tickets
    bookings, tickets = [], []
    active_pax = [p[0] for p in passengers[:380]]  # the last 40 never booked
    flights_by_route: dict[tuple[int, int, int], list] = {}
    for f in flights:
        flights_by_route.setdefault((f[1], f[3], f[4]), []).append(f)
    seats_used: dict[int, set[str]] = {}
    letters = "ABCDEF"
    for b in range(560):
        bid = b + 1
        f = rng.choice(flights)
        group = [rng.choice(active_pax)]
        if rng.random() < 0.35:
            extra = rng.sample(active_pax, rng.choice([1, 1, 2]))
            group += [p for p in extra if p not in group]
        legs = [f]
        back = [g for g in flights_by_route.get((f[1], f[4], f[3]), []) if g[6] > f[7]]
        if back and rng.random() < 0.4:
            legs.append(back[min(len(back) - 1, rng.randint(0, 6))])
        dep = datetime.strptime(f[6], "%Y-%m-%d %H:%M:%S")
        booked = dep - timedelta(days=rng.randint(1, 120), hours=rng.randint(0, 23), minutes=rng.randint(0, 59))
        status = "cancelled" if rng.random() < 0.07 else "confirmed"
        promo = rng.choice(PROMOS) if rng.random() < 0.18 else None
        r = rng.randrange(100)
        acc = 0
        cls = "economy"
        for name, _, w in CLASS_MULT:
            acc += w
            if r < acc:
                cls = name
                break
        mult = dict((c[0], c[1]) for c in CLASS_MULT)[cls]
        total = 0.0
        for leg in legs:
            for p in group:
                price = round(leg[11] * mult * (0.9 if promo else 1.0), 2)
                seat = None
                if status == "confirmed" and leg[10] != "scheduled" or rng.random() < 0.3:
                    used = seats_used.setdefault(leg[0], set())
                    while True:
                        seat = f"{rng.randint(1, 38)}{rng.choice(letters)}"
                        if seat not in used:
                            used.add(seat)
                            break
                bags = rng.choice([0, 0, 1, 1, 1, 2])
                tickets.append((len(tickets) + 1, bid, leg[0], p, cls, seat, price, bags))
                total += price
        ref = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))
        bookings.append((bid, ref, group[0], dt(booked), status, promo, round(total, 2)))
    bookings.sort(key=lambda x: x[0])

    crew = []
    crew_names: set[tuple[str, str]] = set()
    crew_of: dict[tuple[int, str], list[int]] = {}
    for al in range(8):
        captains = []
        for role, n in (("captain", 3), ("first officer", 3), ("purser", 2), ("flight attendant", 6)):
            for _ in range(n):
                cid = len(crew) + 1
                while True:
                    fn, ln = rng.choice(FIRST), rng.choice(LAST)
                    if (fn, ln) not in crew_names:
                        crew_names.add((fn, ln))
                        break
                hire = date(rng.randint(1998 if role == "captain" else 2008, 2023), rng.randint(1, 12),
                            rng.randint(1, 28)).isoformat()
                sup = None if role == "captain" else rng.choice(captains)
                crew.append((cid, al + 1, fn, ln, role, hire, sup))
                crew_of.setdefault((al + 1, role), []).append(cid)
                if role == "captain":
                    captains.append(cid)
    flight_crew = []
    for f in flights:
        if f[10] == "scheduled" and f[6] > "2024-06-25":
            continue  # roster not published yet
        al = f[1]
        ids = [rng.choice(crew_of[(al, "captain")]), rng.choice(crew_of[(al, "first officer")]),
               rng.choice(crew_of[(al, "purser")])]
        ids += rng.sample(crew_of[(al, "flight attendant")], 2)
        for c in sorted(ids):
            flight_crew.append((f[0], c))

    return [
        ("airlines", ["airline_id", "name", "iata_code", "country", "founded_year"], airlines),
        ("airports", ["airport_id", "iata_code", "name", "city", "country", "elevation_ft"], airports),
        ("aircraft", ["aircraft_id", "airline_id", "registration", "manufacturer", "model", "seat_capacity",
                      "in_service_date", "retired_date"], aircraft),
        ("flights", ["flight_id", "airline_id", "flight_number", "origin_airport_id", "destination_airport_id",
                     "aircraft_id", "scheduled_departure", "scheduled_arrival", "actual_departure",
                     "actual_arrival", "status", "base_fare"], [tuple(f) for f in flights]),
        ("passengers", ["passenger_id", "first_name", "last_name", "email", "birth_date", "nationality",
                        "frequent_flyer_number"], passengers),
        ("bookings", ["booking_id", "booking_reference", "contact_passenger_id", "booked_at", "status",
                      "promo_code", "total_amount"], bookings),
        ("tickets", ["ticket_id", "booking_id", "flight_id", "passenger_id", "cabin_class", "seat_number",
                     "price", "checked_bags"], tickets),
        ("crew_members", ["crew_id", "airline_id", "first_name", "last_name", "role", "hire_date",
                          "supervisor_id"], crew),
        ("flight_crew", ["flight_id", "crew_id"], flight_crew),
    ]


def templates(d: Data) -> list[Tpl]:
    def airline(rng):
        return {"airline": d.pick(rng, "SELECT name FROM airlines ORDER BY airline_id")[0]}

    def two_airlines(rng):
        a, b = rng.sample([r[0] for r in d.rows("SELECT name FROM airlines ORDER BY airline_id")], 2)
        return {"a1": a, "a2": b}

    def nat(rng):
        n = d.pick(rng, "SELECT DISTINCT nationality FROM passengers ORDER BY 1")[0]
        return {"nat": n, "adj": DEMONYM[n]}

    def city_pair(rng):
        c1, c2 = d.pick(rng, "SELECT DISTINCT T2.city, T3.city FROM flights AS T1 JOIN airports AS T2 ON "
                             "T1.origin_airport_id = T2.airport_id JOIN airports AS T3 ON "
                             "T1.destination_airport_id = T3.airport_id ORDER BY 1, 2")
        return {"c1": c1, "c2": c2}

    def origin_city(rng):
        return {"city": d.pick(rng, "SELECT DISTINCT T2.city FROM flights AS T1 JOIN airports AS T2 ON "
                                    "T1.origin_airport_id = T2.airport_id ORDER BY 1")[0]}

    def dest_city(rng):
        return {"city": d.pick(rng, "SELECT DISTINCT T2.city FROM flights AS T1 JOIN airports AS T2 ON "
                                    "T1.destination_airport_id = T2.airport_id ORDER BY 1")[0]}

    def flight_on_day(rng):
        fn, dep = d.pick(rng, "SELECT T1.flight_number, T1.scheduled_departure FROM flights AS T1 "
                              "WHERE T1.flight_id IN (SELECT flight_id FROM tickets) ORDER BY 1, 2")
        day = dep[:10]
        dd = date.fromisoformat(day)
        return {"fn": fn, "date": day, "day_text": f"{MONTHS[dd.month - 1]} {dd.day}, {dd.year}",
                "day_short": f"{MONTHS[dd.month - 1][:3]} {dd.day}"}

    def flight_no(rng):
        return {"fn": d.pick(rng, "SELECT DISTINCT flight_number FROM flights ORDER BY 1")[0]}

    def airport_month(rng):
        code = d.pick(rng, "SELECT DISTINCT T2.iata_code FROM flights AS T1 JOIN airports AS T2 ON "
                           "T1.origin_airport_id = T2.airport_id ORDER BY 1")[0]
        m = rng.randint(1, 6)
        return {"code": code, "mm": f"{m:02d}", "month": MONTHS[m - 1]}

    def a_date(rng):
        dd = date(2024, 1, 1) + timedelta(days=rng.randint(0, 180))
        return {"date": dd.isoformat(), "day_text": f"{MONTHS[dd.month - 1]} {dd.day}, {dd.year}",
                "day_short": f"{dd.month}/{dd.day}/{dd.year}"}

    def month_airline(rng):
        m = rng.randint(1, 6)
        return {"mm": f"{m:02d}", "month": MONTHS[m - 1], **airline(rng)}

    def month(rng):
        m = rng.randint(1, 6)
        return {"mm": f"{m:02d}", "month": MONTHS[m - 1]}

    def crew_person(rng):
        fn, ln = d.pick(rng, "SELECT first_name, last_name FROM crew_members WHERE crew_id IN "
                             "(SELECT crew_id FROM flight_crew) ORDER BY crew_id")
        return {"fn": fn, "ln": esc(ln), "ln_q": ln}

    def pax(rng):
        fn, ln = d.pick(rng, "SELECT first_name, last_name FROM passengers WHERE passenger_id IN "
                             "(SELECT passenger_id FROM tickets) ORDER BY passenger_id")
        return {"fn": fn, "ln": esc(ln), "ln_q": ln}

    def cabin_n(rng):
        return {"cls": rng.choice(["economy", "business", "premium economy"]), "n": rng.choice([2, 3])}

    def role_airline(rng):
        return {"role": rng.choice(["captain", "first officer", "purser", "flight attendant"]), **airline(rng)}

    def top_n(rng):
        return {"n": rng.choice([3, 5, 10])}

    def letter(rng):
        return {"letter": rng.choice("BGHKMRSTW")}

    def promo(rng):
        return {"code": rng.choice(PROMOS)}

    def booking_ref(rng):
        return {"ref": d.pick(rng, "SELECT booking_reference FROM bookings ORDER BY booking_id")[0]}

    def minutes(rng):
        return {"n": rng.choice([30, 45, 60, 90, 120])}

    def lead_days(rng):
        return {"n": rng.choice([60, 90, 100, 110])}

    def capacity(rng):
        return {"n": rng.choice([150, 180, 200, 250, 290])}

    def year(rng):
        return {"year": rng.randint(2010, 2020)}

    def birth_year(rng):
        return {"year": rng.randint(1955, 1975)}

    def word(rng):
        return {"word": rng.choice(["International", "Airport", "Gardermoen", "Kennedy", "Barcelona", "Trudeau"])}

    def manufacturer(rng):
        return {"man": rng.choice(["Airbus", "Boeing", "Embraer"])}

    def having_n(rng):
        return {"n": rng.choice([4, 5, 6])}

    def country(rng):
        return country_slots(d.pick(rng, "SELECT DISTINCT country FROM airports ORDER BY 1")[0])

    def week(rng):
        dd = date(2024, 1, 1) + timedelta(days=rng.randint(0, 160))
        return {"date": dd.isoformat(), "day_text": f"{MONTHS[dd.month - 1]} {dd.day}, {dd.year}"}

    def nat_n(rng):
        return {**nat(rng), "n": rng.choice([3, 5])}

    join_orig = "JOIN airports AS T2 ON T1.origin_airport_id = T2.airport_id"
    join_al = "JOIN airlines AS T2 ON T1.airline_id = T2.airline_id"

    return country_phrasing([
        # ---------------- shared templates ----------------
        Tpl("airline_list", "SELECT name, country FROM airlines",
            ["List every airline and its home country.", "which airlines are there and where are they based?",
             "Show the name and country of all airlines.", "give me all carriers with their country"]),
        Tpl("airports_in_country", "SELECT name, city FROM airports WHERE country = '{country}'",
            ["Which airports are in {country}?", "list the airports located in {country} with their city",
             "Show name and city of every airport in {country}.", "airports in {country}?"], country),
        Tpl("count_pax_nat", "SELECT COUNT(*) FROM passengers WHERE nationality = '{nat}'",
            ["How many passengers are from {nat}?", "number of passengers with {adj} nationality",
             "Count the travellers whose nationality is {nat}.", "how many {adj} passengers do we have"], nat),
        Tpl("aircraft_capacity", "SELECT registration, model FROM aircraft WHERE seat_capacity > {n}",
            ["Which aircraft have more than {n} seats? Give registration and model.",
             "list planes with a seat capacity above {n}",
             "Show the registration and model of every aircraft seating over {n} passengers.",
             "aircraft with more than {n} seats"], capacity),
        Tpl("crew_hired_since", "SELECT first_name, last_name, role FROM crew_members WHERE hire_date >= '{year}-01-01'",
            ["Which crew members were hired in {year} or later?", "list crew who joined since {year} with their role",
             "Show name and role of crew members hired from {year} onwards.",
             "crew members that started in {year} or after"], year),
        Tpl("cancelled_count", "SELECT COUNT(*) FROM flights WHERE status = 'cancelled'",
            ["How many flights were cancelled?", "number of cancelled flights", "Count the cancelled flights.",
             "how many flights got cancelled in total"]),
        Tpl("pax_no_ff_nat",
            "SELECT first_name, last_name FROM passengers WHERE nationality = '{nat}' AND frequent_flyer_number IS NULL",
            ["Which {adj} passengers have no frequent flyer number?",
             "list passengers from {nat} who are not in the loyalty programme",
             "Show the names of {adj} travellers without a frequent flyer number.",
             "{adj} passengers missing a frequent flyer number"], nat),
        Tpl("airport_name_like", "SELECT name, city FROM airports WHERE name LIKE '%{word}%'",
            ["Which airports have '{word}' in their name?", "airports whose name contains {word}",
             "List name and city of airports with {word} in the name.", "find airports named like {word}"], word),
        Tpl("pax_lastname_letter", "SELECT first_name, last_name FROM passengers WHERE last_name LIKE '{letter}%'",
            ["List passengers whose last name starts with {letter}.", "which passengers have a surname beginning with {letter}?",
             "Show first and last names of passengers with a last name starting with the letter {letter}.",
             "passengers whose family name starts with {letter}"], letter),
        Tpl("flights_city_pair",
            "SELECT T1.flight_number, T1.scheduled_departure FROM flights AS T1 JOIN airports AS T2 ON "
            "T1.origin_airport_id = T2.airport_id JOIN airports AS T3 ON T1.destination_airport_id = T3.airport_id "
            "WHERE T2.city = '{c1}' AND T3.city = '{c2}'",
            ["What flights go from {c1} to {c2}? Give flight number and departure time.",
             "list all flights from {c1} to {c2} with their scheduled departure",
             "Show flight numbers and departure times for the {c1} to {c2} route.",
             "flights {c1} -> {c2}?"], city_pair),
        Tpl("flights_per_airline",
            "SELECT T2.name, COUNT(*) FROM flights AS T1 JOIN airlines AS T2 ON T1.airline_id = T2.airline_id GROUP BY T2.name",
            ["How many flights does each airline operate?", "number of flights per airline",
             "Count the flights of every carrier.", "for each airline, how many flights are there"]),
        Tpl("top_airline_flights",
            "SELECT T2.name FROM flights AS T1 JOIN airlines AS T2 ON T1.airline_id = T2.airline_id "
            "GROUP BY T2.airline_id ORDER BY COUNT(*) DESC LIMIT 1",
            ["Which airline operates the most flights?", "what carrier has the largest number of flights",
             "Name the airline with the highest flight count.", "airline with most flights"]),
        Tpl("busiest_origins",
            f"SELECT T2.name, COUNT(*) FROM flights AS T1 {join_orig} GROUP BY T2.airport_id "
            "ORDER BY COUNT(*) DESC LIMIT {n}",
            ["What are the {n} busiest airports by number of departing flights?",
             "top {n} airports by departures, with the count",
             "List the {n} airports with the most departures and how many each has.",
             "which {n} airports have the most flights leaving from them"], top_n),
        Tpl("avg_fare_airline",
            f"SELECT AVG(T1.base_fare) FROM flights AS T1 {join_al} WHERE T2.name = '{{airline}}'",
            ["What is the average base fare on {airline} flights?", "average economy fare for {airline}",
             "How much does a {airline} flight cost on average (base fare)?",
             "mean base fare of flights operated by {airline}"], airline),
        Tpl("flights_on_date", "SELECT flight_number, scheduled_departure FROM flights WHERE date(scheduled_departure) = '{date}'",
            ["Which flights were scheduled to depart on {day_text}?", "list flights departing on {date}",
             "Show flight numbers and departure times for {day_short}.", "what flights leave on {day_text}"], a_date),
        Tpl("flights_per_month",
            "SELECT strftime('%m', scheduled_departure) AS month, COUNT(*) FROM flights "
            "GROUP BY strftime('%m', scheduled_departure) ORDER BY month",
            ["How many flights are scheduled in each month?", "number of flights per month",
             "Give the monthly flight count, month by month.", "count flights by month of departure"]),
        Tpl("delayed_departures",
            "SELECT flight_number, scheduled_departure, actual_departure FROM flights "
            "WHERE (julianday(actual_departure) - julianday(scheduled_departure)) * 24 * 60 > {n}",
            ["Which flights left more than {n} minutes late?", "list flights with a departure delay over {n} minutes",
             "Show flights whose actual departure was more than {n} minutes after schedule.",
             "flights delayed by more than {n} min on departure"], minutes),
        Tpl("avg_delay_airline",
            "SELECT T2.name, AVG((julianday(T1.actual_departure) - julianday(T1.scheduled_departure)) * 24 * 60) "
            "FROM flights AS T1 JOIN airlines AS T2 ON T1.airline_id = T2.airline_id "
            "WHERE T1.actual_departure IS NOT NULL GROUP BY T2.name",
            ["What is the average departure delay in minutes for each airline?",
             "average delay (minutes) per carrier for flights that departed",
             "For every airline, how late do its flights leave on average, in minutes?",
             "mean departure delay by airline"]),
        Tpl("duration_flight_no",
            "SELECT DISTINCT ROUND((julianday(scheduled_arrival) - julianday(scheduled_departure)) * 24, 2) FROM flights "
            "WHERE flight_number = '{fn}'",
            ["How many hours is flight {fn} scheduled to take?", "scheduled duration of {fn} in hours",
             "What is the planned flight time of {fn}, in hours?", "how long is flight {fn} in hours"], flight_no),
        Tpl("tickets_per_class", "SELECT cabin_class, COUNT(*) FROM tickets GROUP BY cabin_class",
            ["How many tickets were sold in each cabin class?", "ticket count per cabin class",
             "Break down the number of tickets by class.", "number of tickets for every cabin class"]),
        Tpl("revenue_per_airline",
            "SELECT T3.name, SUM(T1.price) FROM tickets AS T1 JOIN flights AS T2 ON T1.flight_id = T2.flight_id "
            "JOIN airlines AS T3 ON T2.airline_id = T3.airline_id GROUP BY T3.name ORDER BY SUM(T1.price) DESC",
            ["What is the total ticket revenue of each airline, highest first?",
             "sum of ticket prices per airline, sorted from most to least",
             "Rank airlines by ticket revenue and show the totals.", "ticket sales per airline in dollars, descending"]),
        Tpl("pax_never_flew_nat",
            "SELECT first_name, last_name FROM passengers WHERE nationality = '{nat}' AND passenger_id NOT IN "
            "(SELECT passenger_id FROM tickets)",
            ["Which passengers from {nat} have never had a ticket?", "list {adj} passengers with no tickets at all",
             "Show {adj} passengers who have never held a ticket with us.",
             "{adj} travellers that don't hold any ticket"], nat),
        Tpl("unused_aircraft",
            "SELECT registration, model FROM aircraft WHERE aircraft_id NOT IN (SELECT aircraft_id FROM flights)",
            ["Which aircraft have never been assigned to a flight?", "list planes with no flights",
             "Show registration and model of aircraft that do not appear on any flight.",
             "aircraft that never flew in the schedule"]),
        Tpl("fare_above_avg_airline",
            f"SELECT T1.flight_number, T1.base_fare FROM flights AS T1 {join_al} WHERE T2.name = '{{airline}}' "
            "AND T1.base_fare > (SELECT AVG(base_fare) FROM flights)",
            ["Which {airline} flights have a base fare above the overall average fare?",
             "list {airline} flights priced above the average base fare of all flights",
             "Show flight number and fare of {airline} flights costing more than the average flight.",
             "{airline} flights more expensive than average"], airline),
        Tpl("union_origin_cities",
            "SELECT T2.city FROM flights AS T1 JOIN airports AS T2 ON T1.origin_airport_id = T2.airport_id "
            "JOIN airlines AS T3 ON T1.airline_id = T3.airline_id WHERE T3.name = '{a1}' UNION "
            "SELECT T2.city FROM flights AS T1 JOIN airports AS T2 ON T1.origin_airport_id = T2.airport_id "
            "JOIN airlines AS T3 ON T1.airline_id = T3.airline_id WHERE T3.name = '{a2}'",
            ["Which cities have departures operated by {a1} or {a2}?",
             "list the departure cities served by either {a1} or {a2}",
             "Show every city that {a1} or {a2} flies out of.", "cities with {a1} or {a2} departures"], two_airlines),
        Tpl("late_share_airline",
            "SELECT SUM(CASE WHEN T1.actual_arrival > T1.scheduled_arrival THEN 1 ELSE 0 END), COUNT(*) "
            f"FROM flights AS T1 {join_al} WHERE T2.name = '{{airline}}' AND T1.status = 'landed'",
            ["Of the {airline} flights that landed, how many arrived late and how many landed in total?",
             "for {airline}: number of late arrivals and number of landed flights",
             "How many landed {airline} flights arrived after schedule, out of all landed ones?",
             "{airline} late arrivals vs total landed flights"], airline),
        Tpl("ff_coalesce",
            "SELECT first_name, last_name, COALESCE(frequent_flyer_number, 'none') FROM passengers "
            "WHERE nationality = '{nat}'",
            ["List the {adj} passengers with their frequent flyer number, showing 'none' when they don't have one.",
             "names and loyalty numbers of passengers from {nat} ('none' if missing)",
             "Show each {adj} passenger and their frequent flyer number, or none if there isn't one."], nat),
        Tpl("promo_bookings",
            "SELECT booking_reference, total_amount FROM bookings WHERE promo_code = '{code}'",
            ["Which bookings used the promo code {code}? Show reference and amount.",
             "list bookings made with code {code}",
             "Show booking references and totals for bookings with promo code {code}.",
             "bookings that applied {code}"], promo),
        Tpl("revenue_by_booking_month",
            "SELECT strftime('%Y-%m', booked_at) AS month, SUM(total_amount) FROM bookings WHERE status = 'confirmed' "
            "GROUP BY strftime('%Y-%m', booked_at) ORDER BY month",
            ["What is the total amount of confirmed bookings per booking month?",
             "monthly sum of confirmed booking amounts, by month booked",
             "How much was booked (confirmed only) in each month?",
             "confirmed booking revenue per month"]),
        Tpl("top_bookings", "SELECT booking_reference, total_amount FROM bookings ORDER BY total_amount DESC LIMIT {n}",
            ["What are the {n} most expensive bookings?", "top {n} bookings by total amount",
             "List the {n} bookings with the highest totals.", "show the {n} biggest bookings and their amounts"], top_n),
        Tpl("crew_role_airline",
            "SELECT T1.first_name, T1.last_name FROM crew_members AS T1 JOIN airlines AS T2 ON T1.airline_id = "
            "T2.airline_id WHERE T2.name = '{airline}' AND T1.role = '{role}'",
            ["Who are the {role}s at {airline}?", "list every {role} working for {airline}",
             "Show the names of {airline} crew members whose role is {role}.",
             "{airline} {role}s - names please"], role_airline),
        Tpl("crew_no_supervisor", "SELECT COUNT(*) FROM crew_members WHERE supervisor_id IS NULL",
            ["How many crew members have no supervisor?", "count crew without a supervisor",
             "number of crew members who don't report to anyone"]),
        Tpl("crew_flight_count",
            "SELECT COUNT(*) FROM flight_crew AS T1 JOIN crew_members AS T2 ON T1.crew_id = T2.crew_id "
            "WHERE T2.first_name = '{fn}' AND T2.last_name = '{ln}'",
            ["How many flights has {fn} {ln_q} worked on?", "number of flights crewed by {fn} {ln_q}",
             "Count the flights where {fn} {ln_q} was part of the crew.",
             "how many flights did crew member {fn} {ln_q} fly"], crew_person),
        Tpl("busiest_crew",
            "SELECT T2.first_name, T2.last_name, COUNT(*) FROM flight_crew AS T1 JOIN crew_members AS T2 ON "
            "T1.crew_id = T2.crew_id GROUP BY T1.crew_id ORDER BY COUNT(*) DESC LIMIT {n}",
            ["Which {n} crew members worked the most flights?", "top {n} crew by number of flights",
             "List the {n} busiest crew members and their flight counts.",
             "who are the {n} crew members with most flights"], top_n),
        Tpl("aircraft_per_manufacturer", "SELECT manufacturer, COUNT(*) FROM aircraft GROUP BY manufacturer",
            ["How many aircraft do we have from each manufacturer?", "number of planes per manufacturer",
             "Count the aircraft by manufacturer.", "aircraft count for every manufacturer"]),
        Tpl("avg_capacity_airline",
            f"SELECT AVG(T1.seat_capacity) FROM aircraft AS T1 {join_al} WHERE T2.name = '{{airline}}'",
            ["What is the average seat capacity of the {airline} fleet?", "average number of seats on {airline} aircraft",
             "On average, how many seats do {airline} planes have?"], airline),
        Tpl("retired_aircraft", "SELECT registration, model, retired_date FROM aircraft WHERE retired_date IS NOT NULL",
            ["Which aircraft have been retired, and when?", "list retired planes with their retirement date",
             "Show registration, model and retirement date of aircraft no longer in service."]),
        Tpl("pax_born_before", "SELECT first_name, last_name, birth_date FROM passengers WHERE birth_date < '{year}-01-01'",
            ["Which passengers were born before {year}?", "list passengers born earlier than {year} with birth date",
             "Show passengers whose date of birth is before 1 January {year}.",
             "passengers born before {year}"], birth_year),
        Tpl("distinct_destinations",
            "SELECT DISTINCT T3.city FROM flights AS T1 JOIN airports AS T2 ON T1.origin_airport_id = T2.airport_id "
            "JOIN airports AS T3 ON T1.destination_airport_id = T3.airport_id WHERE T2.city = '{city}'",
            ["Which cities can you fly to from {city}?", "list the destinations served from {city}",
             "What are the distinct destination cities of flights leaving {city}?",
             "where do flights from {city} go"], origin_city),
        Tpl("bags_to_city",
            "SELECT SUM(T1.checked_bags) FROM tickets AS T1 JOIN flights AS T2 ON T1.flight_id = T2.flight_id "
            "JOIN airports AS T3 ON T2.destination_airport_id = T3.airport_id WHERE T3.city = '{city}'",
            ["How many checked bags were booked on flights to {city}?", "total checked bags for flights arriving in {city}",
             "Sum the checked luggage on tickets for flights into {city}."], dest_city),
        Tpl("frequent_pax",
            "SELECT T2.first_name, T2.last_name, COUNT(*) FROM tickets AS T1 JOIN passengers AS T2 ON "
            "T1.passenger_id = T2.passenger_id GROUP BY T1.passenger_id HAVING COUNT(*) >= {n}",
            ["Which passengers hold at least {n} tickets?", "list passengers with {n} or more tickets and the count",
             "Show travellers who have {n} tickets or more.", "passengers with at least {n} tickets"], having_n),
        Tpl("flights_in_week",
            "SELECT flight_number, scheduled_departure FROM flights WHERE scheduled_departure >= '{date}' "
            "AND scheduled_departure < date('{date}', '+7 days')",
            ["Which flights depart in the 7 days starting {day_text}?",
             "list flights scheduled during the week beginning {date}",
             "Show flights leaving between {day_text} and six days later (inclusive).",
             "flights in the week from {date}"], week),
        Tpl("booking_status_counts", "SELECT status, COUNT(*) FROM bookings GROUP BY status",
            ["How many bookings are confirmed and how many cancelled?", "number of bookings per status",
             "Count bookings by their status."]),
        Tpl("unused_destination_airports",
            "SELECT name FROM airports WHERE airport_id NOT IN (SELECT destination_airport_id FROM flights)",
            ["Which airports never receive any flights?", "list airports that are not the destination of any flight",
             "Show airports with no arriving flights."]),
        Tpl("fare_range_origin",
            f"SELECT MIN(T1.base_fare), MAX(T1.base_fare) FROM flights AS T1 {join_orig} WHERE T2.city = '{{city}}'",
            ["What are the lowest and highest base fares on flights departing {city}?",
             "min and max fare for flights out of {city}",
             "Give the cheapest and the most expensive base fare from {city}."], origin_city),
        Tpl("oldest_airline", "SELECT name, founded_year FROM airlines ORDER BY founded_year LIMIT 1",
            ["Which airline was founded first?", "oldest airline and its founding year",
             "What is the earliest-founded carrier?"]),
        Tpl("flights_without_crew_airline",
            f"SELECT T1.flight_number, T1.scheduled_departure FROM flights AS T1 {join_al} WHERE T2.name = '{{airline}}' "
            "AND T1.flight_id NOT IN (SELECT flight_id FROM flight_crew)",
            ["Which {airline} flights don't have a crew assigned yet?", "list {airline} flights with no crew rostered",
             "Show {airline} flights missing a crew assignment."], airline),
        Tpl("unseated_tickets_flight",
            "SELECT COUNT(*) FROM tickets AS T1 JOIN flights AS T2 ON T1.flight_id = T2.flight_id "
            "WHERE T2.flight_number = '{fn}' AND T1.seat_number IS NULL",
            ["How many tickets on flight {fn} have no seat assigned?", "count {fn} tickets without a seat number",
             "number of passengers on {fn} flights still missing a seat"], flight_no),
        Tpl("flights_per_model_airline",
            "SELECT T2.model, COUNT(*) FROM flights AS T1 JOIN aircraft AS T2 ON T1.aircraft_id = T2.aircraft_id "
            "JOIN airlines AS T3 ON T1.airline_id = T3.airline_id WHERE T3.name = '{airline}' GROUP BY T2.model",
            ["How many {airline} flights were flown by each aircraft model?", "{airline}: number of flights per plane model",
             "Break down {airline} flights by aircraft model."], airline),
        Tpl("bookings_per_nat",
            "SELECT T2.nationality, COUNT(*) FROM bookings AS T1 JOIN passengers AS T2 ON "
            "T1.contact_passenger_id = T2.passenger_id GROUP BY T2.nationality ORDER BY COUNT(*) DESC",
            ["How many bookings were made by passengers of each nationality, most first?",
             "bookings per nationality of the booking contact, sorted descending",
             "Count bookings by the nationality of the person who booked."]),
        Tpl("airline_hub_count",
            "SELECT COUNT(DISTINCT T1.origin_airport_id) FROM flights AS T1 JOIN airlines AS T2 ON "
            "T1.airline_id = T2.airline_id WHERE T2.name = '{airline}'",
            ["From how many different airports does {airline} operate departures?",
             "number of distinct departure airports for {airline}",
             "How many airports does {airline} fly out of?"], airline),
        Tpl("cancelled_by_month",
            "SELECT COUNT(*) FROM flights WHERE status = 'cancelled' AND strftime('%m', scheduled_departure) = '{mm}'",
            ["How many flights were cancelled in {month} 2024?", "number of cancellations in {month}",
             "Count the cancelled flights scheduled for {month} 2024."], month),
        # ---------------- dev-only templates ----------------
        Tpl("booking_ticket_sum",
            "SELECT SUM(T1.price) FROM tickets AS T1 JOIN bookings AS T2 ON T1.booking_id = T2.booking_id "
            "WHERE T2.booking_reference = '{ref}'",
            ["What do the tickets in booking {ref} add up to?", "sum of ticket prices for booking {ref}",
             "Total the ticket prices of reservation {ref}."], booking_ref, split="dev"),
        Tpl("airlines_many_aircraft",
            "SELECT T2.name FROM aircraft AS T1 JOIN airlines AS T2 ON T1.airline_id = T2.airline_id "
            "WHERE T1.retired_date IS NULL GROUP BY T2.airline_id HAVING COUNT(*) > {n}",
            ["Which airlines have more than {n} aircraft in service?",
             "airlines operating over {n} active planes", "List carriers with more than {n} non-retired aircraft."],
            lambda rng: {"n": rng.choice([3, 4, 5])}, split="dev"),
        Tpl("pax_ages_flight",
            "SELECT T3.first_name, T3.last_name, T3.birth_date FROM tickets AS T1 JOIN flights AS T2 ON "
            "T1.flight_id = T2.flight_id JOIN passengers AS T3 ON T1.passenger_id = T3.passenger_id "
            "WHERE T2.flight_number = '{fn}' ORDER BY T3.birth_date LIMIT 1",
            ["Who is the oldest passenger ever ticketed on flight {fn}?",
             "oldest traveller to hold a ticket on {fn}, with birth date",
             "Which passenger on any {fn} flight has the earliest birth date?"], flight_no, split="dev"),
        Tpl("avg_bags_class",
            "SELECT cabin_class, AVG(checked_bags) FROM tickets GROUP BY cabin_class ORDER BY AVG(checked_bags) DESC",
            ["What is the average number of checked bags per ticket in each cabin class, highest first?",
             "avg checked bags by class, sorted descending"], split="dev"),
        Tpl("intersect_promo_business",
            "SELECT T2.booking_reference FROM tickets AS T1 JOIN bookings AS T2 ON T1.booking_id = T2.booking_id "
            "WHERE T1.cabin_class = 'business' INTERSECT SELECT booking_reference FROM bookings WHERE promo_code = '{code}'",
            ["Which bookings include business class tickets and used the code {code}?",
             "booking references with business tickets that applied promo {code}"], promo, split="dev",
            allow_empty=True),
        # ---------------- test-only templates ----------------
        Tpl("flights_airport_month",
            f"SELECT T1.flight_number, T1.scheduled_departure FROM flights AS T1 {join_orig} "
            "WHERE T2.iata_code = '{code}' AND strftime('%m', T1.scheduled_departure) = '{mm}'",
            ["Which flights leave {code} in {month} 2024?", "list departures from {code} during {month}",
             "Show flight numbers and times of flights out of {code} in {month} 2024.",
             "what departs {code} in {month}?"], airport_month, split="test"),
        Tpl("pax_on_flight_date",
            "SELECT T3.first_name, T3.last_name FROM tickets AS T1 JOIN flights AS T2 ON T1.flight_id = T2.flight_id "
            "JOIN passengers AS T3 ON T1.passenger_id = T3.passenger_id WHERE T2.flight_number = '{fn}' "
            "AND date(T2.scheduled_departure) = '{date}'",
            ["Who is booked on flight {fn} on {day_text}?", "passenger list for {fn} departing {date}",
             "Which passengers hold tickets for {fn} on {day_short}?",
             "names of the passengers on the {day_text} {fn} flight"], flight_on_day, split="test"),
        Tpl("pax_class_having",
            "SELECT T2.first_name, T2.last_name FROM tickets AS T1 JOIN passengers AS T2 ON T1.passenger_id = "
            "T2.passenger_id WHERE T1.cabin_class = '{cls}' GROUP BY T1.passenger_id HAVING COUNT(*) >= {n}",
            ["Which passengers hold at least {n} {cls} tickets?",
             "list travellers with {n} or more {cls} tickets",
             "Who holds at least {n} tickets in {cls} class?"], cabin_n, split="test"),
        Tpl("airlines_cancel_month",
            "SELECT T1.name FROM airlines AS T1 WHERE EXISTS (SELECT 1 FROM flights AS T2 WHERE T2.airline_id = "
            "T1.airline_id AND T2.status = 'cancelled' AND strftime('%m', T2.scheduled_departure) = '{mm}')",
            ["Which airlines had at least one cancelled flight in {month} 2024?",
             "airlines with a cancellation in {month}", "Name the carriers that cancelled any flight in {month}."],
            month, split="test"),
        Tpl("pax_both_airlines",
            "SELECT T3.first_name, T3.last_name FROM tickets AS T1 JOIN flights AS T2 ON T1.flight_id = T2.flight_id "
            "JOIN passengers AS T3 ON T1.passenger_id = T3.passenger_id WHERE T2.airline_id = "
            "(SELECT airline_id FROM airlines WHERE name = '{a1}') INTERSECT SELECT T3.first_name, T3.last_name "
            "FROM tickets AS T1 JOIN flights AS T2 ON T1.flight_id = T2.flight_id JOIN passengers AS T3 ON "
            "T1.passenger_id = T3.passenger_id WHERE T2.airline_id = (SELECT airline_id FROM airlines WHERE name = '{a2}')",
            ["Which passengers have tickets on both {a1} and {a2}?",
             "travellers who flew with {a1} and also with {a2}",
             "List passengers holding tickets with {a1} as well as {a2}."], two_airlines, split="test"),
        Tpl("crew_supervisors_airline",
            "SELECT T1.first_name, T1.last_name, T2.first_name, T2.last_name FROM crew_members AS T1 JOIN "
            "crew_members AS T2 ON T1.supervisor_id = T2.crew_id JOIN airlines AS T3 ON T1.airline_id = T3.airline_id "
            "WHERE T3.name = '{airline}'",
            ["List each {airline} crew member together with their supervisor's name.",
             "who supervises whom at {airline}?", "Show {airline} crew members and the name of their supervisor."],
            airline, split="test"),
        Tpl("crew_on_flight_date",
            "SELECT T3.first_name, T3.last_name, T3.role FROM flight_crew AS T1 JOIN flights AS T2 ON "
            "T1.flight_id = T2.flight_id JOIN crew_members AS T3 ON T1.crew_id = T3.crew_id "
            "WHERE T2.flight_number = '{fn}' AND date(T2.scheduled_departure) = '{date}'",
            ["Who crewed flight {fn} on {day_text}, and in what role?",
             "crew list with roles for {fn} on {date}", "Which crew members worked {fn} on {day_short}?"],
            flight_on_day, split="test"),
        Tpl("aircraft_age",
            "SELECT T1.registration, (julianday('2024-07-01') - julianday(T1.in_service_date)) / 365.25 FROM aircraft AS "
            f"T1 {join_al} WHERE T2.name = '{{airline}}' AND T1.retired_date IS NULL",
            ["How many years had each active {airline} aircraft been in service on July 1, 2024?",
             "age in years of {airline}'s in-service planes as of 2024-07-01",
             "For every non-retired {airline} aircraft, give registration and years in service at 1 July 2024."],
            airline, split="test"),
        Tpl("distinct_pax_airline",
            "SELECT COUNT(DISTINCT T1.passenger_id) FROM tickets AS T1 JOIN flights AS T2 ON T1.flight_id = "
            "T2.flight_id JOIN airlines AS T3 ON T2.airline_id = T3.airline_id WHERE T3.name = '{airline}'",
            ["How many different passengers have tickets with {airline}?",
             "number of unique travellers on {airline} flights",
             "Count distinct passengers who flew {airline}."], airline, split="test"),
        Tpl("early_bookings",
            "SELECT DISTINCT T1.booking_reference FROM bookings AS T1 JOIN tickets AS T2 ON T1.booking_id = "
            "T2.booking_id JOIN flights AS T3 ON T2.flight_id = T3.flight_id WHERE julianday(T3.scheduled_departure) "
            "- julianday(T1.booked_at) > {n}",
            ["Which bookings were made more than {n} days before one of their flights?",
             "booking references booked over {n} days ahead of departure",
             "List the bookings placed more than {n} days before the departure of one of their flights."],
            lead_days, split="test"),
        Tpl("avg_price_class_flight",
            "SELECT T1.cabin_class, AVG(T1.price) FROM tickets AS T1 JOIN flights AS T2 ON T1.flight_id = T2.flight_id "
            "WHERE T2.flight_number = '{fn}' GROUP BY T1.cabin_class",
            ["What is the average ticket price per cabin class on flight {fn}?",
             "avg price by class for {fn} tickets", "For flight {fn}, how much did each cabin class cost on average?"],
            flight_no, split="test"),
        Tpl("pax_to_city",
            "SELECT DISTINCT T3.first_name, T3.last_name FROM tickets AS T1 JOIN flights AS T2 ON T1.flight_id = "
            "T2.flight_id JOIN passengers AS T3 ON T1.passenger_id = T3.passenger_id JOIN airports AS T4 ON "
            "T2.destination_airport_id = T4.airport_id WHERE T4.city = '{city}'",
            ["Which passengers have tickets to {city}?", "who has flown or will fly to {city}?",
             "List the distinct passengers with a ticket on a flight into {city}."], dest_city, split="test"),
        Tpl("except_origin_cities",
            "SELECT T2.city FROM flights AS T1 JOIN airports AS T2 ON T1.origin_airport_id = T2.airport_id "
            "JOIN airlines AS T3 ON T1.airline_id = T3.airline_id WHERE T3.name = '{a1}' EXCEPT "
            "SELECT T2.city FROM flights AS T1 JOIN airports AS T2 ON T1.origin_airport_id = T2.airport_id "
            "JOIN airlines AS T3 ON T1.airline_id = T3.airline_id WHERE T3.name = '{a2}'",
            ["Which cities does {a1} fly out of that {a2} does not?",
             "departure cities of {a1} not served by {a2}",
             "List cities with {a1} departures but no {a2} departures."], two_airlines, split="test"),
        Tpl("top_spenders_nat",
            "SELECT T2.first_name, T2.last_name, SUM(T1.price) FROM tickets AS T1 JOIN passengers AS T2 ON "
            "T1.passenger_id = T2.passenger_id WHERE T2.nationality = '{nat}' GROUP BY T1.passenger_id "
            "ORDER BY SUM(T1.price) DESC LIMIT {n}",
            ["Who are the {n} {adj} passengers with the highest ticket spend?",
             "top {n} passengers from {nat} by total ticket price",
             "List the {n} biggest spenders among {adj} travellers and what they spent."], nat_n, split="test"),
        Tpl("flights_status_case_airline",
            "SELECT T1.flight_number, CASE WHEN T1.actual_departure IS NULL THEN 'not flown' WHEN "
            "T1.actual_arrival > T1.scheduled_arrival THEN 'late' ELSE 'on time' END FROM flights AS T1 "
            f"{join_al} WHERE T2.name = '{{airline}}' AND date(T1.scheduled_departure) = '{{date}}'",
            ["For {airline} flights on {day_text}, label each as 'not flown', 'late' or 'on time'.",
             "{airline} flights on {date}: flight number and whether they were late, on time or not flown"],
            lambda rng: {**airline(rng), **a_date(rng)}, split="test"),
    ])


def main() -> None:
    rng = random.Random(SEED)
    tables = build_data(rng)
    build_domain("flights", ROOT, SCHEMA, tables, templates, SEED)


if __name__ == "__main__":
    main()
