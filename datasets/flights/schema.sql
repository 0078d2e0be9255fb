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
