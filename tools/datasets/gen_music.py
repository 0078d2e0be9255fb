"""Generate datasets/music/: a music streaming service database.

Deterministic (fixed seed), Python 3.11 standard library only:
    python3 tools/datasets/gen_music.py
rewrites datasets/music/ byte-identically.
"""

from __future__ import annotations

import os
import random
import sys
from datetime import date, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common_b import MONTHS, Data, Tpl, build_domain, country_phrasing, country_slots, esc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 7303

SCHEMA = """
-- Music streaming service. Money is REAL in US dollars with 2 decimals.
-- Dates are TEXT 'YYYY-MM-DD'; datetimes are TEXT 'YYYY-MM-DD HH:MM:SS' (UTC). Data as of 2024-06-30.
-- birth_year is NULL when the user did not give it; referred_by_user_id is NULL unless another user invited them.
CREATE TABLE users (
    user_id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    country TEXT NOT NULL,
    signup_date TEXT NOT NULL,
    birth_year INTEGER,
    referred_by_user_id INTEGER REFERENCES users (user_id)
);

CREATE TABLE artists (
    artist_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    genre TEXT NOT NULL,
    formed_year INTEGER NOT NULL
);

-- label is NULL for self-released albums.
CREATE TABLE albums (
    album_id INTEGER PRIMARY KEY,
    artist_id INTEGER NOT NULL REFERENCES artists (artist_id),
    title TEXT NOT NULL,
    release_date TEXT NOT NULL,
    label TEXT
);

-- explicit is 1 for explicit lyrics, 0 otherwise.
CREATE TABLE tracks (
    track_id INTEGER PRIMARY KEY,
    album_id INTEGER NOT NULL REFERENCES albums (album_id),
    title TEXT NOT NULL,
    track_number INTEGER NOT NULL,
    duration_seconds INTEGER NOT NULL,
    explicit INTEGER NOT NULL
);

-- Who performs on a track (links tracks and artists). role is 'primary' or 'featured'.
CREATE TABLE track_artists (
    track_id INTEGER NOT NULL REFERENCES tracks (track_id),
    artist_id INTEGER NOT NULL REFERENCES artists (artist_id),
    role TEXT NOT NULL,
    PRIMARY KEY (track_id, artist_id)
);

-- is_public is 1 for public playlists, 0 for private ones.
CREATE TABLE playlists (
    playlist_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    is_public INTEGER NOT NULL
);

-- Tracks in a playlist (links playlists and tracks); position starts at 1.
CREATE TABLE playlist_tracks (
    playlist_id INTEGER NOT NULL REFERENCES playlists (playlist_id),
    track_id INTEGER NOT NULL REFERENCES tracks (track_id),
    position INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (playlist_id, track_id)
);

-- One row per stream. seconds_played is how long the user listened (a play under 30 seconds is a skip).
-- device is 'mobile', 'desktop', 'web' or 'smart speaker'.
CREATE TABLE plays (
    play_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    track_id INTEGER NOT NULL REFERENCES tracks (track_id),
    played_at TEXT NOT NULL,
    seconds_played INTEGER NOT NULL,
    device TEXT NOT NULL
);

-- plan is 'free', 'student', 'premium' or 'family'; monthly_price in US dollars.
-- end_date is NULL for the subscription that is currently active.
CREATE TABLE subscriptions (
    subscription_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    plan TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT,
    monthly_price REAL NOT NULL
);
"""

ARTISTS = [
    ("Luna Vega", "Spain", "pop", 2012), ("The Paper Kites Club", "Australia", "indie", 2009),
    ("Marcus Reed", "United States", "hip hop", 2014), ("Nightshift Avenue", "United Kingdom", "electronic", 2011),
    ("Ella Brightwater", "Canada", "folk", 2015), ("Golden Hour Trio", "United States", "jazz", 2003),
    ("Kira Sato", "Japan", "pop", 2016), ("Iron Harbor", "Sweden", "rock", 2001),
    ("DJ Solace", "Germany", "electronic", 2013), ("The Velvet Foxes", "United Kingdom", "rock", 2006),
    ("Amara Okafor", "Nigeria", "r&b", 2017), ("Blue Mesa", "United States", "country", 2008),
    ("Theo Lindqvist", "Sweden", "pop", 2018), ("Saint Cecilia Quartet", "France", "classical", 1998),
    ("Rio Nascimento", "Brazil", "latin", 2010), ("Static Bloom", "Canada", "indie", 2019),
    ("Young Prophet", "United States", "hip hop", 2016), ("Maya Rivers", "United States", "r&b", 2012),
    ("The Lanterns", "Ireland", "folk", 2007), ("Neon Cartel", "Netherlands", "electronic", 2015),
    ("Sofia Marquez", "Mexico", "latin", 2014), ("Hollow Pines", "United States", "rock", 2004),
    ("Jonah Vale", "United Kingdom", "pop", 2020), ("Quiet Engines", "Germany", "indie", 2011),
    ("Lil Meridian", "United States", "hip hop", 2019), ("Clara Moreau", "France", "jazz", 2009),
    ("Dusty Roads Band", "United States", "country", 1999), ("Aurora Falls", "Norway", "electronic", 2017),
]
WORDS_A = ["Midnight", "Golden", "Electric", "Silent", "Broken", "Wild", "Summer", "Neon", "Paper", "Velvet",
           "Lonely", "Northern", "Crimson", "Endless", "Sweet", "Faded", "Burning", "Hidden", "Silver", "Blue"]
WORDS_B = ["Hearts", "Roads", "Dreams", "Lights", "Rivers", "City", "Skies", "Love", "Fire", "Echoes", "Waves",
           "Nights", "Stars", "Gardens", "Shadows", "Rain", "Horizon", "Letters", "Ghosts", "Tides"]
SINGLE_TITLES = ["Stay", "Runaway", "Hold On", "Home", "Fever", "Closer", "Gravity", "Satellite", "Lullaby",
                 "Wildfire", "Paradise", "Daylight", "Wonder", "Heartbeat", "Afterglow", "Oceans", "Mirror",
                 "Falling", "Sunrise", "Carousel", "Chasing Love", "Love Again", "Crazy Love", "Anthem", "Echo"]
VERBS = ["Chasing", "Dancing in the", "Running from the", "Waiting for the", "Lost in the", "Follow the",
         "Under the", "Beyond the", "Into the", "Remember the"]
LABELS = ["Northstar Records", "Blue Fern Music", "Atlas Sound", "Redline Recordings", "Harborlight"]
COUNTRIES = ["United States", "United Kingdom", "Canada", "Germany", "France", "Spain", "Brazil", "Mexico",
             "Japan", "Sweden", "Australia", "India"]
NAME_BITS = ["sky", "beat", "wave", "luna", "nova", "echo", "pixel", "river", "moss", "fox", "jazz", "rock",
             "vinyl", "neon", "storm", "mint", "owl", "zen", "dust", "bloom"]
PLAYLIST_NAMES = ["Morning Coffee", "Workout Mix", "Road Trip", "Chill Vibes", "Focus", "Party Starters",
                  "Rainy Days", "Sleep", "Throwbacks", "Summer Hits", "Study Session", "Dinner Jazz",
                  "Sunday Morning", "Running 5K", "Late Night Drive", "Feel Good", "Indie Finds", "Heartbreak"]
PLANS = [("free", 0.0), ("student", 5.99), ("premium", 10.99), ("family", 16.99)]
DEVICES = ["mobile", "mobile", "mobile", "desktop", "web", "smart speaker"]


def dt(x: datetime) -> str:
    return x.strftime("%Y-%m-%d %H:%M:%S")


def build_data(rng: random.Random):
    artists = [(i + 1, *a) for i, a in enumerate(ARTISTS)]
    albums, tracks, track_artists = [], [], []
    title_pool = SINGLE_TITLES + [f"{x} {y}" for x in WORDS_A for y in WORDS_B] + \
        [f"{v} {y}" for v in VERBS for y in WORDS_B]
    rng.shuffle(title_pool)
    used_album_titles = set()
    for a in artists:
        aid, _, _, genre, formed = a
        n_alb = rng.choice([2, 2, 3, 3, 4])
        years = sorted(rng.sample(range(max(formed + 1, 2008), 2025), n_alb))
        for y in years:
            while True:
                title = f"{rng.choice(WORDS_A)} {rng.choice(WORDS_B)}"
                if title not in used_album_titles:
                    used_album_titles.add(title)
                    break
            rel = date(y, rng.randint(1, 12), rng.randint(1, 28))
            if rel > date(2024, 6, 28):
                rel = date(2024, rng.randint(1, 6), rng.randint(1, 28))
            label = None if rng.random() < 0.2 else rng.choice(LABELS)
            alb_id = len(albums) + 1
            albums.append((alb_id, aid, title, rel.isoformat(), label))
            n_tr = rng.randint(6, 11)
            titles = []
            for _ in range(n_tr):
                titles.append(title_pool[len(tracks) % len(title_pool)] if not titles else
                              title_pool[(len(tracks) + len(titles)) % len(title_pool)])
            for k, t in enumerate(titles, 1):
                tid = len(tracks) + 1
                if genre == "classical":
                    dur = rng.randint(300, 720)
                else:
                    dur = rng.randint(130, 330)
                expl = 1 if (genre == "hip hop" and rng.random() < 0.7) or rng.random() < 0.05 else 0
                tracks.append((tid, alb_id, t, k, dur, expl))
                track_artists.append((tid, aid, "primary"))
                if rng.random() < 0.12:
                    feat = rng.choice([x for x in artists if x[0] != aid and x[3] in (genre, "pop", "hip hop", "r&b")])
                    track_artists.append((tid, feat[0], "featured"))
    track_dur = {t[0]: t[4] for t in tracks}
    album_rel = {a[0]: a[3] for a in albums}
    track_rel = {t[0]: album_rel[t[1]] for t in tracks}
    track_artist = {t[0]: albums[t[1] - 1][1] for t in tracks}

    users = []
    names = set()
    for uid in range(1, 321):
        while True:
            uname = f"{rng.choice(NAME_BITS)}{rng.choice(NAME_BITS)}{rng.randint(1, 99)}"
            if uname not in names:
                names.add(uname)
                break
        signup = date(2021, 1, 1) + timedelta(days=rng.randint(0, 1200))
        by = None if rng.random() < 0.25 else rng.randint(1960, 2008)
        ref = None
        if uid > 20 and rng.random() < 0.2:
            ref = rng.randint(1, uid - 1)
        users.append([uid, uname, f"{uname}@example.net", rng.choice(COUNTRIES[:8] * 2 + COUNTRIES[8:]),
                      signup, by, ref])
    # make referrals consistent: referrer signed up before referee
    for u in users:
        if u[6] is not None and users[u[6] - 1][4] >= u[4]:
            u[6] = None
    user_signup = {u[0]: u[4] for u in users}
    users = [(u[0], u[1], u[2], u[3], u[4].isoformat(), u[5], u[6]) for u in users]

    subs = []
    for u in users:
        uid = u[0]
        start = user_signup[uid]
        plan = rng.choice(["free", "free", "student", "premium", "premium", "family"])
        n = rng.choice([1, 1, 2, 2, 3])
        for k in range(n):
            price = dict(PLANS)[plan]
            if k < n - 1:
                end = start + timedelta(days=rng.randint(60, 400))
                if end >= date(2024, 6, 30):
                    end = None
            else:
                end = None if rng.random() < 0.85 else start + timedelta(days=rng.randint(30, 300))
                if end is not None and end >= date(2024, 6, 30):
                    end = None
            subs.append((len(subs) + 1, uid, plan, start.isoformat(), end.isoformat() if end else None, price))
            if end is None:
                break
            start = end + timedelta(days=1 if rng.random() < 0.7 else rng.randint(10, 90))
            if start >= date(2024, 6, 30):
                break
            plan = rng.choice([p for p, _ in PLANS if p != plan])

    listeners = [u[0] for u in users[:290]]  # the last 30 users never played anything
    # popularity: some tracks much more popular; some never played
    playable = [t[0] for t in tracks if t[0] % 9 != 0]
    weights = [1 + (7 if t % 7 == 0 else 0) + (3 if t % 5 == 0 else 0) for t in playable]
    favourites = {uid: rng.sample(playable, 10) for uid in listeners}
    plays = []
    start = datetime(2024, 1, 1)
    for _ in range(4200):
        uid = rng.choice(listeners)
        if rng.random() < 0.5:
            tid = rng.choice(favourites[uid])
        else:
            tid = rng.choices(playable, weights)[0]
        when = start + timedelta(seconds=rng.randint(0, 181 * 86400 - 1))
        if dt(when)[:10] < track_rel[tid] or when.date() < user_signup[uid]:
            continue
        dur = track_dur[tid]
        sec = rng.randint(5, 29) if rng.random() < 0.2 else (dur if rng.random() < 0.7 else rng.randint(30, dur))
        plays.append((uid, tid, dt(when), sec, rng.choice(DEVICES)))
    plays.sort(key=lambda p: (p[2], p[0]))
    plays = [(i + 1, *p) for i, p in enumerate(plays)]

    playlists, pl_tracks = [], []
    owners = rng.sample([u[0] for u in users], 110)
    for uid in sorted(owners):
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            pid = len(playlists) + 1
            created = max(user_signup[uid], date(2022, 1, 1)) + timedelta(days=rng.randint(0, 400))
            if created > date(2024, 6, 1):
                created = date(2024, 6, 1)
            created_at = datetime(created.year, created.month, created.day, rng.randint(7, 23), rng.randint(0, 59))
            name = rng.choice(PLAYLIST_NAMES)
            playlists.append((pid, uid, name, dt(created_at), 1 if rng.random() < 0.6 else 0))
            cands = [t[0] for t in tracks if track_rel[t[0]] <= created.isoformat()]
            chosen = rng.sample(cands, min(len(cands), rng.randint(4, 22)))
            added = created_at
            for pos, tid in enumerate(chosen, 1):
                added = added + timedelta(hours=rng.randint(0, 240), minutes=rng.randint(0, 59))
                pl_tracks.append((pid, tid, pos, dt(added)))

    return [
        ("users", ["user_id", "username", "email", "country", "signup_date", "birth_year", "referred_by_user_id"],
         users),
        ("artists", ["artist_id", "name", "country", "genre", "formed_year"], artists),
        ("albums", ["album_id", "artist_id", "title", "release_date", "label"], albums),
        ("tracks", ["track_id", "album_id", "title", "track_number", "duration_seconds", "explicit"], tracks),
        ("track_artists", ["track_id", "artist_id", "role"], track_artists),
        ("playlists", ["playlist_id", "user_id", "name", "created_at", "is_public"], playlists),
        ("playlist_tracks", ["playlist_id", "track_id", "position", "added_at"], pl_tracks),
        ("plays", ["play_id", "user_id", "track_id", "played_at", "seconds_played", "device"], plays),
        ("subscriptions", ["subscription_id", "user_id", "plan", "start_date", "end_date", "monthly_price"], subs),
    ], track_artist


def templates(d: Data) -> list[Tpl]:
    def art(rng):
        n = d.pick(rng, "SELECT name FROM artists ORDER BY artist_id")[0]
        return {"artist": esc(n), "artist_q": n}

    def two_artists(rng):
        a, b = rng.sample([r[0] for r in d.rows("SELECT name FROM artists ORDER BY artist_id")], 2)
        return {"a1": esc(a), "a2": esc(b), "a1q": a, "a2q": b}

    def country(rng):
        return country_slots(d.pick(rng, "SELECT DISTINCT country FROM artists ORDER BY 1")[0])

    def user_country(rng):
        return country_slots(rng.choice(COUNTRIES))

    def genre(rng):
        return {"genre": d.pick(rng, "SELECT DISTINCT genre FROM artists ORDER BY 1")[0]}

    def album(rng):
        t = d.pick(rng, "SELECT title FROM albums ORDER BY album_id")[0]
        return {"album": esc(t), "album_q": t}

    def user(rng):
        return {"user": d.pick(rng, "SELECT username FROM users WHERE user_id IN (SELECT user_id FROM plays) "
                                    "ORDER BY user_id")[0]}

    def pl_user(rng):
        return {"user": d.pick(rng, "SELECT username FROM users WHERE user_id IN (SELECT user_id FROM playlists) "
                                    "ORDER BY user_id")[0]}

    def playlist(rng):
        uname, pname = d.pick(rng, "SELECT T2.username, T1.name FROM playlists AS T1 JOIN users AS T2 ON "
                                   "T1.user_id = T2.user_id GROUP BY T2.username, T1.name HAVING COUNT(*) = 1 ORDER BY 1, 2")
        return {"user": uname, "pl": pname}

    def minutes(rng):
        return {"n": rng.choice([4, 5, 6, 8])}

    def year(rng):
        return {"year": rng.randint(2021, 2024)}

    def rel_year(rng):
        return {"year": rng.randint(2012, 2024)}

    def top_n(rng):
        return {"n": rng.choice([3, 5, 10])}

    def word(rng):
        return {"word": rng.choice(["Love", "Night", "Fire", "Light", "Heart", "Rain", "Star", "Home"])}

    def month(rng):
        m = rng.randint(1, 6)
        return {"mm": f"2024-{m:02d}", "month": MONTHS[m - 1]}

    def user_month(rng):
        return {**user(rng), **month(rng)}

    def a_day(rng):
        dd = date(2024, 1, 1) + timedelta(days=rng.randint(0, 181))
        return {"date": dd.isoformat(), "day_text": f"{MONTHS[dd.month - 1]} {dd.day}, {dd.year}"}

    def track(rng):
        t = d.pick(rng, "SELECT T1.title FROM tracks AS T1 WHERE T1.track_id IN (SELECT track_id FROM plays) "
                        "GROUP BY T1.title HAVING COUNT(*) = 1 ORDER BY 1")[0]
        return {"track": esc(t), "track_q": t}

    def pl_track(rng):
        t = d.pick(rng, "SELECT T1.title FROM tracks AS T1 WHERE T1.track_id IN (SELECT track_id FROM playlist_tracks) "
                        "GROUP BY T1.title HAVING COUNT(*) = 1 ORDER BY 1")[0]
        return {"track": esc(t), "track_q": t}

    def plan(rng):
        return {"plan": rng.choice(["free", "student", "premium", "family"])}

    def having_n(rng):
        return {"n": rng.choice([15, 18, 20])}

    def age(rng):
        return {"age": rng.choice([25, 30, 40, 50])}

    def formed(rng):
        return {"year": rng.randint(2003, 2015)}

    def repeat_n(rng):
        return {"n": rng.choice([2, 3])}

    def featured_artist(rng):
        n = d.pick(rng, "SELECT DISTINCT T2.name FROM track_artists AS T1 JOIN artists AS T2 ON T1.artist_id = "
                        "T2.artist_id WHERE T1.role = 'featured' ORDER BY 1")[0]
        return {"artist": esc(n), "artist_q": n}

    def country_plan(rng):
        return {**user_country(rng), **plan(rng)}

    def date_after(rng):
        return {**playlist(rng), **a_day_2023(rng)}

    def a_day_2023(rng):
        dd = date(2022, 6, 1) + timedelta(days=rng.randint(0, 600))
        return {"date": dd.isoformat(), "day_text": f"{MONTHS[dd.month - 1]} {dd.day}, {dd.year}"}

    def genre_pair(rng):
        return {**genre(rng), **country(rng)}

    j_alb = "JOIN albums AS T2 ON T1.album_id = T2.album_id"

    return country_phrasing([
        # ---------------- shared ----------------
        Tpl("genres", "SELECT DISTINCT genre FROM artists",
            ["What genres do our artists play?", "list the distinct artist genres", "Which genres are represented?"]),
        Tpl("artists_country", "SELECT name, genre FROM artists WHERE country = '{country}'",
            ["Which artists come from {country}? Include their genre.", "list artists from {country}",
             "Show name and genre of every artist based in {country}.", "artists from {country}?"], country),
        Tpl("albums_of_artist",
            "SELECT T1.title, T1.release_date FROM albums AS T1 JOIN artists AS T2 ON T1.artist_id = T2.artist_id "
            "WHERE T2.name = '{artist}' ORDER BY T1.release_date",
            ["List {artist_q}'s albums in release order.", "what albums has {artist_q} put out, oldest first?",
             "Show titles and release dates of albums by {artist_q}, sorted by date.",
             "{artist_q} discography by release date"], art),
        Tpl("long_tracks", "SELECT title, duration_seconds FROM tracks WHERE duration_seconds > {n} * 60",
            ["Which tracks are longer than {n} minutes?", "songs over {n} minutes long",
             "List tracks with a duration above {n} minutes, with their length in seconds."], minutes),
        Tpl("explicit_on_album",
            f"SELECT COUNT(*) FROM tracks AS T1 {j_alb} WHERE T2.title = '{{album}}' AND T1.explicit = 1",
            ["How many explicit tracks are on the album {album_q}?", "number of explicit songs on {album_q}",
             "Count tracks flagged explicit on '{album_q}'."], album, allow_empty=False),
        Tpl("signups_year", "SELECT COUNT(*) FROM users WHERE strftime('%Y', signup_date) = '{year}'",
            ["How many users signed up in {year}?", "number of new users in {year}",
             "Count the accounts created during {year}.", "how many people joined in {year}"], year),
        Tpl("no_birth_year", "SELECT username FROM users WHERE country = '{country}' AND birth_year IS NULL",
            ["Which users from {country} haven't given a birth year?", "usernames in {country} with no birth year",
             "List {country} users whose birth year is missing."], user_country),
        Tpl("title_like", "SELECT title FROM tracks WHERE title LIKE '%{word}%'",
            ["Which tracks have '{word}' in the title?", "songs whose title contains {word}",
             "Find track titles containing the word {word}."], word),
        Tpl("the_artists", "SELECT name FROM artists WHERE name LIKE 'The %'",
            ["Which artists have a name starting with 'The'?", "bands whose name begins with The",
             "List artists named 'The something'."]),
        Tpl("albums_per_artist",
            "SELECT T2.name, COUNT(*) FROM albums AS T1 JOIN artists AS T2 ON T1.artist_id = T2.artist_id "
            "GROUP BY T2.artist_id HAVING COUNT(*) >= {n} ORDER BY COUNT(*) DESC",
            ["Which artists have released at least {n} albums? Most prolific first.",
             "artists with {n} or more albums and their album count, sorted descending",
             "List the artists with at least {n} albums and how many each has, highest count first."],
            lambda rng: {"n": rng.choice([2, 3, 4])}),
        Tpl("avg_duration_genre",
            "SELECT T3.genre, AVG(T1.duration_seconds) FROM tracks AS T1 JOIN albums AS T2 ON T1.album_id = "
            "T2.album_id JOIN artists AS T3 ON T2.artist_id = T3.artist_id GROUP BY T3.genre",
            ["What is the average track length in seconds for each genre?", "avg song duration per genre",
             "For every genre, how long are tracks on average (seconds)?"]),
        Tpl("longest_on_album",
            f"SELECT T1.title FROM tracks AS T1 {j_alb} WHERE T2.title = '{{album}}' ORDER BY T1.duration_seconds "
            "DESC LIMIT 1",
            ["What is the longest track on {album_q}?", "longest song on the album {album_q}",
             "Which track on '{album_q}' runs the longest?"], album),
        Tpl("most_played_tracks",
            "SELECT T2.title, COUNT(*) FROM plays AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id "
            "GROUP BY T1.track_id ORDER BY COUNT(*) DESC LIMIT {n}",
            ["What are the {n} most played tracks?", "top {n} songs by number of plays",
             "List the {n} tracks streamed most often, with play counts."], top_n),
        Tpl("most_played_artists",
            "SELECT T4.name, COUNT(*) FROM plays AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id JOIN albums AS T3 "
            "ON T2.album_id = T3.album_id JOIN artists AS T4 ON T3.artist_id = T4.artist_id GROUP BY T4.artist_id "
            "ORDER BY COUNT(*) DESC LIMIT {n}",
            ["Which {n} artists get the most plays (by album artist)?", "top {n} artists by streams of their albums",
             "List the {n} most streamed artists, counting plays of tracks on their albums."], top_n),
        Tpl("plays_per_device", "SELECT device, COUNT(*) FROM plays GROUP BY device",
            ["How many plays came from each device type?", "number of streams per device",
             "Break down plays by device.", "plays by device type"]),
        Tpl("user_month_plays",
            "SELECT COUNT(*) FROM plays AS T1 JOIN users AS T2 ON T1.user_id = T2.user_id WHERE T2.username = '{user}' "
            "AND strftime('%Y-%m', T1.played_at) = '{mm}'",
            ["How many tracks did {user} play in {month} 2024?", "number of plays by {user} during {month}",
             "Count {user}'s streams in {month} 2024."], user_month),
        Tpl("top_listeners_hours",
            "SELECT T2.username, SUM(T1.seconds_played) / 3600.0 FROM plays AS T1 JOIN users AS T2 ON T1.user_id = "
            "T2.user_id GROUP BY T1.user_id ORDER BY SUM(T1.seconds_played) DESC LIMIT {n}",
            ["Who are the {n} users with the most listening time, in hours?",
             "top {n} listeners by total hours played", "List the {n} heaviest listeners and their hours of listening."],
            top_n),
        Tpl("skips_track",
            "SELECT COUNT(*) FROM plays AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id WHERE T2.title = '{track}' "
            "AND T1.seconds_played < 30",
            ["How many times was '{track_q}' skipped (played under 30 seconds)?",
             "number of skips of the song {track_q}", "Count plays of {track_q} that lasted less than 30 seconds."],
            track, allow_empty=False),
        Tpl("plays_per_month",
            "SELECT strftime('%Y-%m', played_at) AS month, COUNT(*) FROM plays GROUP BY strftime('%Y-%m', played_at) "
            "ORDER BY month",
            ["How many plays were there each month?", "monthly play counts", "Number of streams per month, in order."]),
        Tpl("plays_on_day", "SELECT COUNT(*) FROM plays WHERE date(played_at) = '{date}'",
            ["How many plays were there on {day_text}?", "number of streams on {date}",
             "Count the plays recorded on {day_text}."], a_day),
        Tpl("user_playlists",
            "SELECT T1.name, T1.created_at FROM playlists AS T1 JOIN users AS T2 ON T1.user_id = T2.user_id "
            "WHERE T2.username = '{user}'",
            ["What playlists has {user} made?", "list {user}'s playlists with creation date",
             "Show the playlists created by user {user}."], pl_user),
        Tpl("playlist_size",
            "SELECT COUNT(*) FROM playlist_tracks AS T1 JOIN playlists AS T2 ON T1.playlist_id = T2.playlist_id JOIN "
            "users AS T3 ON T2.user_id = T3.user_id WHERE T2.name = '{pl}' AND T3.username = '{user}'",
            ["How many tracks are in {user}'s playlist '{pl}'?", "number of songs in the {pl} playlist of {user}",
             "Count the tracks on {user}'s {pl} playlist."], playlist),
        Tpl("playlist_minutes",
            "SELECT SUM(T3.duration_seconds) / 60.0 FROM playlist_tracks AS T1 JOIN playlists AS T2 ON T1.playlist_id = "
            "T2.playlist_id JOIN tracks AS T3 ON T1.track_id = T3.track_id JOIN users AS T4 ON T2.user_id = T4.user_id "
            "WHERE T2.name = '{pl}' AND T4.username = '{user}'",
            ["How long is {user}'s '{pl}' playlist in minutes?", "total runtime in minutes of the {pl} playlist by {user}",
             "What is the total length, in minutes, of {user}'s {pl} playlist?"], playlist),
        Tpl("public_playlists", "SELECT COUNT(*) FROM playlists WHERE is_public = 1",
            ["How many playlists are public?", "number of public playlists", "Count the playlists that are public."]),
        Tpl("big_playlists",
            "SELECT T2.name, COUNT(*) FROM playlist_tracks AS T1 JOIN playlists AS T2 ON T1.playlist_id = T2.playlist_id "
            "GROUP BY T1.playlist_id HAVING COUNT(*) >= {n}",
            ["Which playlists have at least {n} tracks?", "playlists with {n} or more songs and their size",
             "List playlists holding {n} tracks or more."], having_n),
        Tpl("unplayed_tracks_artist",
            "SELECT T1.title FROM tracks AS T1 JOIN albums AS T2 ON T1.album_id = T2.album_id JOIN artists AS T3 ON "
            "T2.artist_id = T3.artist_id WHERE T3.name = '{artist}' AND T1.track_id NOT IN (SELECT track_id FROM plays)",
            ["Which {artist_q} tracks have never been played?", "songs by {artist_q} with zero plays",
             "List tracks on {artist_q} albums that nobody has streamed."], art),
        Tpl("silent_users_country",
            "SELECT username FROM users WHERE country = '{country}' AND user_id NOT IN (SELECT user_id FROM plays)",
            ["Which users in {country} have never played a track?", "{country} users with no plays at all",
             "List usernames from {country} that never streamed anything."], user_country),
        Tpl("active_per_plan", "SELECT plan, COUNT(*) FROM subscriptions WHERE end_date IS NULL GROUP BY plan",
            ["How many users are currently on each plan?", "active subscriptions per plan",
             "Count current subscriptions by plan.", "number of active subscribers for every plan"]),
        Tpl("mrr", "SELECT SUM(monthly_price) FROM subscriptions WHERE end_date IS NULL",
            ["What is the total monthly revenue from currently active subscriptions?",
             "sum of monthly prices of active subscriptions", "How much do active subscriptions bring in per month?"]),
        Tpl("ended_in_year", "SELECT COUNT(*) FROM subscriptions WHERE strftime('%Y', end_date) = '{year}'",
            ["How many subscriptions ended in {year}?", "number of subscriptions that ended during {year}",
             "Count subscriptions with an end date in {year}."], lambda rng: {"year": rng.randint(2021, 2024)}),
        Tpl("referred_count", "SELECT COUNT(*) FROM users WHERE referred_by_user_id IS NOT NULL",
            ["How many users were referred by another user?", "number of referred users",
             "Count users who joined through a referral."]),
        Tpl("label_coalesce",
            "SELECT T1.title, COALESCE(T1.label, 'self-released') FROM albums AS T1 JOIN artists AS T2 ON T1.artist_id = "
            "T2.artist_id WHERE T2.genre = '{genre}'",
            ["List the {genre} albums with their label, writing 'self-released' when there is no label.",
             "{genre} album titles and labels ('self-released' if none)",
             "Show each {genre} album and its record label, or self-released if it has none."], genre),
        Tpl("albums_in_year", "SELECT title, release_date FROM albums WHERE strftime('%Y', release_date) = '{year}'",
            ["Which albums came out in {year}?", "albums released in {year} with their date",
             "List the {year} album releases."], rel_year),
        Tpl("self_released", "SELECT title FROM albums WHERE label IS NULL",
            ["Which albums have no record label?", "self-released albums", "List albums without a label."]),
        Tpl("tracks_above_avg_genre",
            "SELECT T1.title FROM tracks AS T1 JOIN albums AS T2 ON T1.album_id = T2.album_id JOIN artists AS T3 ON "
            "T2.artist_id = T3.artist_id WHERE T3.genre = '{genre}' AND T1.duration_seconds > (SELECT "
            "AVG(duration_seconds) FROM tracks)",
            ["Which {genre} tracks are longer than the average track in the catalogue?",
             "{genre} songs with above-average length", "List {genre} tracks whose duration exceeds the overall average."],
            genre),
        Tpl("union_artists",
            "SELECT name FROM artists WHERE country = '{country}' UNION SELECT name FROM artists WHERE genre = '{genre}'",
            ["Which artists are from {country} or play {genre}?", "artists that are {genre} or from {country}",
             "List every artist based in {country} together with all {genre} artists."], genre_pair),
        Tpl("listener_count_artist",
            "SELECT COUNT(DISTINCT T1.user_id) FROM plays AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id JOIN "
            "albums AS T3 ON T2.album_id = T3.album_id JOIN artists AS T4 ON T3.artist_id = T4.artist_id "
            "WHERE T4.name = '{artist}'",
            ["How many different users have listened to {artist_q}?", "number of unique listeners of {artist_q}",
             "Count distinct users who played a track from a {artist_q} album."], art),
        Tpl("users_over_age",
            "SELECT username, birth_year FROM users WHERE birth_year <= 2024 - {age}",
            ["Which users turn {age} or older in 2024?", "users at least {age} years old this year (2024)",
             "List users whose birth year is at least {age} years before 2024."], age),
        Tpl("first_play_user",
            "SELECT MIN(T1.played_at) FROM plays AS T1 JOIN users AS T2 ON T1.user_id = T2.user_id "
            "WHERE T2.username = '{user}'",
            ["When did {user} first play a track?", "first play timestamp for {user}",
             "What is the earliest play recorded for {user}?"], user),
        Tpl("most_playlists_user",
            "SELECT T2.username FROM playlists AS T1 JOIN users AS T2 ON T1.user_id = T2.user_id GROUP BY T1.user_id "
            "HAVING COUNT(*) >= {n}",
            ["Which users have created at least {n} playlists?", "users with {n} or more playlists",
             "Who made {n} playlists or more?"], lambda rng: {"n": rng.choice([2, 3])}),
        Tpl("tracks_per_album_artist",
            "SELECT T1.title, COUNT(*) FROM albums AS T1 JOIN tracks AS T2 ON T1.album_id = T2.album_id JOIN artists AS "
            "T3 ON T1.artist_id = T3.artist_id WHERE T3.name = '{artist}' GROUP BY T1.album_id",
            ["How many tracks are on each {artist_q} album?", "track count per album for {artist_q}",
             "For every album by {artist_q}, give the number of songs."], art),
        Tpl("artists_formed_before", "SELECT name, formed_year FROM artists WHERE formed_year < {year}",
            ["Which artists formed before {year}?", "acts that started earlier than {year}",
             "List artists with a formation year before {year}."], formed),
        Tpl("plays_per_genre",
            "SELECT T4.genre, COUNT(*) FROM plays AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id JOIN albums AS T3 "
            "ON T2.album_id = T3.album_id JOIN artists AS T4 ON T3.artist_id = T4.artist_id GROUP BY T4.genre "
            "ORDER BY COUNT(*) DESC",
            ["How many plays does each genre get, most popular first?", "streams per genre, descending",
             "Rank genres by number of plays."]),
        Tpl("users_in_country",
            "SELECT COUNT(*) FROM users WHERE country = '{country}'",
            ["How many users live in {country}?", "number of users from {country}",
             "Count the {country} user accounts."], user_country),
        Tpl("explicit_share_genre",
            "SELECT T3.genre, SUM(T1.explicit) FROM tracks AS T1 JOIN albums AS T2 ON T1.album_id = T2.album_id "
            "JOIN artists AS T3 ON T2.artist_id = T3.artist_id GROUP BY T3.genre",
            ["How many explicit tracks does each genre have?", "explicit song count per genre",
             "Number of explicit tracks by genre."]),
        Tpl("plan_prices", "SELECT DISTINCT plan, monthly_price FROM subscriptions ORDER BY monthly_price",
            ["What does each plan cost per month, cheapest first?", "list plans with their monthly price",
             "Show the distinct plans and prices, ordered by price."]),
        # ---------------- dev-only ----------------
        Tpl("referrals_of_user",
            "SELECT T1.username FROM users AS T1 JOIN users AS T2 ON T1.referred_by_user_id = T2.user_id "
            "WHERE T2.username = '{user}'",
            ["Which users did {user} refer?", "who joined through {user}'s referral?",
             "List the users referred by {user}."],
            lambda rng: {"user": d.pick(rng, "SELECT T2.username FROM users AS T1 JOIN users AS T2 ON "
                                             "T1.referred_by_user_id = T2.user_id ORDER BY T2.user_id")[0]},
            split="dev"),
        Tpl("most_playlisted_track",
            "SELECT T2.title, COUNT(*) FROM playlist_tracks AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id "
            "GROUP BY T1.track_id ORDER BY COUNT(*) DESC LIMIT {n}",
            ["Which {n} tracks appear on the most playlists?", "top {n} songs by number of playlists they're on"],
            top_n, split="dev"),
        Tpl("avg_listen_device",
            "SELECT device, AVG(seconds_played) FROM plays WHERE seconds_played >= 30 GROUP BY device",
            ["Excluding skips, how long does a play last on average on each device (seconds)?",
             "average seconds played per device, ignoring plays under 30 seconds"], split="dev"),
        Tpl("playlists_with_track",
            "SELECT DISTINCT T3.name FROM playlist_tracks AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id JOIN "
            "playlists AS T3 ON T1.playlist_id = T3.playlist_id WHERE T2.title = '{track}'",
            ["Which playlists include '{track_q}'?", "names of playlists containing the song {track_q}",
             "On what playlists does {track_q} appear?"], pl_track, split="dev"),
        Tpl("plan_started_after",
            "SELECT T2.username, T1.start_date FROM subscriptions AS T1 JOIN users AS T2 ON T1.user_id = T2.user_id "
            "WHERE T1.plan = '{plan}' AND T1.start_date > '{date}'",
            ["Which users started a {plan} subscription after {day_text}?",
             "{plan} subscriptions begun after {date}, with username and start date"],
            lambda rng: {**plan(rng), **a_day_2023(rng)}, split="dev"),
        # ---------------- test-only ----------------
        Tpl("users_both_artists",
            "SELECT T4.username FROM plays AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id JOIN albums AS T3 ON "
            "T2.album_id = T3.album_id JOIN users AS T4 ON T1.user_id = T4.user_id WHERE T3.artist_id = (SELECT "
            "artist_id FROM artists WHERE name = '{a1}') INTERSECT SELECT T4.username FROM plays AS T1 JOIN tracks AS T2 "
            "ON T1.track_id = T2.track_id JOIN albums AS T3 ON T2.album_id = T3.album_id JOIN users AS T4 ON "
            "T1.user_id = T4.user_id WHERE T3.artist_id = (SELECT artist_id FROM artists WHERE name = '{a2}')",
            ["Which users have listened to both {a1q} and {a2q}?", "listeners of {a1q} who also played {a2q}",
             "List users who streamed albums by {a1q} as well as by {a2q}."], two_artists, split="test"),
        Tpl("playlisters_not_premium",
            "SELECT T2.username FROM playlists AS T1 JOIN users AS T2 ON T1.user_id = T2.user_id WHERE T2.country = "
            "'{country}' EXCEPT SELECT T2.username FROM subscriptions AS T1 JOIN users AS T2 ON T1.user_id = T2.user_id "
            "WHERE T1.plan = 'premium' AND T1.end_date IS NULL",
            ["Which {country} users have made playlists but are not currently on the premium plan?",
             "playlist creators in {country} without an active premium subscription",
             "List {country} users who own a playlist and don't have premium right now."], user_country, split="test"),
        Tpl("artists_explicit_exists",
            "SELECT T1.name FROM artists AS T1 WHERE T1.genre = '{genre}' AND EXISTS (SELECT 1 FROM albums AS T2 JOIN "
            "tracks AS T3 ON T2.album_id = T3.album_id WHERE T2.artist_id = T1.artist_id AND T3.explicit = 1)",
            ["Which {genre} artists have at least one explicit track?",
             "{genre} acts with any explicit song on their albums",
             "List {genre} artists that have released an explicit track."], genre, split="test", allow_empty=True),
        Tpl("listener_countries",
            "SELECT DISTINCT T5.country FROM plays AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id JOIN albums AS T3 "
            "ON T2.album_id = T3.album_id JOIN artists AS T4 ON T3.artist_id = T4.artist_id JOIN users AS T5 ON "
            "T1.user_id = T5.user_id WHERE T4.name = '{artist}'",
            ["From which countries do {artist_q}'s listeners come?", "countries of users who played {artist_q}",
             "In which countries are the people listening to {artist_q} located?"], art, split="test"),
        Tpl("signup_to_first_play",
            "SELECT julianday(date(MIN(T1.played_at))) - julianday(T2.signup_date) FROM plays AS T1 JOIN users AS T2 ON "
            "T1.user_id = T2.user_id WHERE T2.username = '{user}'",
            ["How many days passed between {user} signing up and their first play?",
             "days from signup to first stream for {user}",
             "For {user}, how long after registering did the first play happen, in days?"], user, split="test"),
        Tpl("plays_in_week",
            "SELECT COUNT(*) FROM plays WHERE played_at >= '{date}' AND played_at < date('{date}', '+7 days')",
            ["How many plays happened in the 7 days starting {day_text}?",
             "number of streams in the week beginning {date}",
             "Count plays from {day_text} through the following six days."], a_day, split="test"),
        Tpl("album_lengths_artist",
            "SELECT T1.title, SUM(T2.duration_seconds) / 60.0 FROM albums AS T1 JOIN tracks AS T2 ON T1.album_id = "
            "T2.album_id JOIN artists AS T3 ON T1.artist_id = T3.artist_id WHERE T3.name = '{artist}' GROUP BY T1.album_id",
            ["How long is each {artist_q} album in minutes?", "total running time in minutes of every {artist_q} album",
             "For each album by {artist_q}, give its length in minutes."], art, split="test"),
        Tpl("added_after",
            "SELECT T3.title FROM playlist_tracks AS T1 JOIN playlists AS T2 ON T1.playlist_id = T2.playlist_id JOIN "
            "tracks AS T3 ON T1.track_id = T3.track_id JOIN users AS T4 ON T2.user_id = T4.user_id WHERE T2.name = '{pl}' "
            "AND T4.username = '{user}' AND date(T1.added_at) > '{date}'",
            ["Which songs were added to {user}'s '{pl}' playlist after {day_text}?",
             "tracks added to the {pl} playlist of {user} since {date}",
             "List tracks put on {user}'s {pl} playlist after {day_text}."], date_after, split="test",
            allow_empty=True),
        Tpl("country_current_plan",
            "SELECT T2.username FROM subscriptions AS T1 JOIN users AS T2 ON T1.user_id = T2.user_id WHERE "
            "T1.plan = '{plan}' AND T1.end_date IS NULL AND T2.country = '{country}'",
            ["Which users in {country} are currently on the {plan} plan?",
             "active {plan} subscribers from {country}", "List {country} usernames with an active {plan} subscription."],
            country_plan, split="test"),
        Tpl("avg_playlist_size",
            "SELECT AVG(track_count) FROM (SELECT COUNT(*) AS track_count FROM playlist_tracks AS T1 JOIN playlists AS T2 "
            "ON T1.playlist_id = T2.playlist_id WHERE T2.is_public = {pub} GROUP BY T1.playlist_id)",
            ["On average, how many tracks does a {pubw} playlist contain?",
             "average number of songs per {pubw} playlist", "What is the mean size of {pubw} playlists in tracks?"],
            lambda rng: rng.choice([{"pub": 1, "pubw": "public"}, {"pub": 0, "pubw": "private"}]), split="test"),
        Tpl("repeat_listens",
            "SELECT T3.username, T2.title, COUNT(*) FROM plays AS T1 JOIN tracks AS T2 ON T1.track_id = T2.track_id "
            "JOIN users AS T3 ON T1.user_id = T3.user_id WHERE T3.country = '{country}' GROUP BY T1.user_id, "
            "T1.track_id HAVING COUNT(*) > {n}",
            ["Which users from {country} played the same track more than {n} times, and which track?",
             "{country} users with a song they played over {n} times (user, song, count)",
             "List user and track pairs in {country} with more than {n} plays."],
            lambda rng: {**user_country(rng), **repeat_n(rng)}, split="test"),
        Tpl("plays_by_hour_user",
            "SELECT strftime('%H', T1.played_at) AS hour, COUNT(*) FROM plays AS T1 JOIN users AS T2 ON T1.user_id = "
            "T2.user_id WHERE T2.username = '{user}' GROUP BY hour ORDER BY hour",
            ["At what hours of the day does {user} listen, and how many plays per hour?",
             "{user}'s plays broken down by hour of day", "Count {user}'s plays for each hour of the day."],
            user, split="test"),
        Tpl("length_class_album",
            "SELECT T1.title, CASE WHEN T1.duration_seconds < 180 THEN 'short' WHEN T1.duration_seconds <= 300 THEN "
            f"'medium' ELSE 'long' END FROM tracks AS T1 {j_alb} WHERE T2.title = '{{album}}'",
            ["Label every track on {album_q} as short (under 3 minutes), medium (3 to 5 minutes) or long.",
             "for the album {album_q}: each song and whether it's short (<3 min), medium (3-5 min) or long (>5 min)"],
            album, split="test"),
        Tpl("sub_length_plan",
            "SELECT plan, AVG(julianday(end_date) - julianday(start_date)) FROM subscriptions WHERE end_date IS NOT NULL "
            "AND strftime('%Y', start_date) = '{year}' GROUP BY plan",
            ["For subscriptions started in {year} that have ended, how many days did they last on average per plan?",
             "average length in days of finished subscriptions begun in {year}, by plan"],
            lambda rng: {"year": rng.randint(2021, 2023)}, split="test"),
        Tpl("featured_tracks",
            "SELECT T3.title FROM track_artists AS T1 JOIN artists AS T2 ON T1.artist_id = T2.artist_id JOIN tracks AS "
            "T3 ON T1.track_id = T3.track_id WHERE T2.name = '{artist}' AND T1.role = 'featured'",
            ["On which tracks is {artist_q} a featured artist?", "songs featuring {artist_q}",
             "List the tracks where {artist_q} appears as a guest (featured)."], featured_artist, split="test"),
    ])


def main() -> None:
    rng = random.Random(SEED)
    tables, _ = build_data(rng)
    build_domain("music", ROOT, SCHEMA, tables, templates, SEED)


if __name__ == "__main__":
    main()
